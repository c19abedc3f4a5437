<?php
/*
 * Installs WordPress into the grain's empty SQLite database (run once by
 * launcher.sh, on the command line). The installer insists on an
 * administrator account; nobody ever logs in with it (users come from the
 * platform, see mu-plugins/sandhaven.php), so its password is random and
 * forgotten. Exits 0 when WordPress is installed.
 */
define( 'WP_INSTALLING', true );
$_SERVER['HTTP_HOST'] = 'localhost';
require '/opt/app/wordpress/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
if ( ! is_blog_installed() ) {
	$installed = wp_install( 'My blog', 'wordpress-admin', 'wordpress-admin@localhost.invalid',
		false, '', wp_generate_password( 40, true, true ) );
	if ( is_wp_error( $installed ) ) {
		fwrite( STDERR, 'install.php: ' . $installed->get_error_message() . "\n" );
		exit( 1 );
	}
}
// Plain links (?p=1): PHP's built-in server does no URL rewriting.
update_option( 'permalink_structure', '' );
// The search engines cannot reach a grain anyway, nor can browsers reach
// Gravatar from inside the shell's frame (the grain's pages may load images from
// anywhere, but a user's e-mail hash should not leave the server).
update_option( 'blog_public', '0' );
update_option( 'show_avatars', '0' );
exit( 0 );
