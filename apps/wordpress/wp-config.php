<?php
/*
 * WordPress's settings in a Sandhaven grain (see docs/developing/wordpress.md).
 * The package is read-only; the grain's storage holds the SQLite database
 * (/var/wordpress/database), uploads and the secret keys made on first start.
 */

// The grain is reached on a different host in every session, and WordPress
// would store the address it was installed at: WP_HOME and WP_SITEURL are the
// session's origin from the gateway's X-Sandstorm-Base-Path (checked to be a
// bare origin), else from Host; the command line (install, cron) gets localhost.
$sandhaven_base = $_SERVER['HTTP_X_SANDSTORM_BASE_PATH'] ?? '';
if ( ! preg_match( '#^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$#', $sandhaven_base ) ) {
	$sandhaven_host = $_SERVER['HTTP_HOST'] ?? '';
	$sandhaven_base = preg_match( '#^[A-Za-z0-9.-]+(:[0-9]{1,5})?$#', $sandhaven_host )
		? ( ( $_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '' ) === 'https' ? 'https' : 'http' ) . "://$sandhaven_host"
		: 'http://localhost';
}
if ( str_starts_with( $sandhaven_base, 'https://' ) ) {
	$_SERVER['HTTPS'] = 'on';
}
define( 'WP_HOME', $sandhaven_base );
define( 'WP_SITEURL', $sandhaven_base );

// SQLite through the sqlite-database-integration drop-in (wp-content/db.php).
define( 'DB_DIR', '/var/wordpress/database/' );
define( 'DB_FILE', 'wordpress.sqlite' );
define( 'DB_NAME', 'wordpress' );
define( 'DB_USER', '' );
define( 'DB_PASSWORD', '' );
define( 'DB_HOST', '' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
$table_prefix = 'wp_';

// Secret keys and salts, made on the grain's first start by launcher.sh.
require '/var/wordpress/keys.php';

// The package is read-only and the grain has no network: no plugin or theme
// installs, no file editor, no updates, no outgoing HTTP. Scheduled tasks would
// call the site's own address, which the grain cannot reach; launcher.sh runs
// wp-cron.php every minute instead.
define( 'DISALLOW_FILE_MODS', true );
define( 'DISALLOW_FILE_EDIT', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'WP_AUTO_UPDATE_CORE', false );
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'DISABLE_WP_CRON', true );
define( 'WP_DEBUG', false );

if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
