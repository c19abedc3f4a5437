<?php
/*
 * Router of PHP's built-in server for WordPress (php8.2 -S … router.php).
 *
 * Refuses what WordPress's usual web server rules keep private (the settings,
 * the library scripts under wp-includes, as WordPress's nginx guide does, the
 * database folder, the web installer) and the login page, which a grain does
 * not use; serves uploads from the grain's storage, hands existing files
 * and directories to the built-in server and everything else to WordPress's
 * index.php (plain links need no rewriting; this only makes 404 pages
 * WordPress's own). Paths are normalised first so that "/x/../wp-config.php" or
 * "//wp-config.php" cannot slip past.
 */
require __DIR__ . '/cookies.php';

// Not parse_url: it reads "//wp-config.php" as a host name.
$path = rawurldecode( explode( '?', $_SERVER['REQUEST_URI'] ?? '/', 2 )[0] );
$parts = [];
foreach ( explode( '/', $path ) as $part ) {
	if ( $part === '' || $part === '.' ) {
		continue;
	}
	if ( $part === '..' ) {
		array_pop( $parts );
		continue;
	}
	$parts[] = $part;
}
$clean = '/' . implode( '/', $parts );

function sandhaven_refuse( int $status, string $message ): bool {
	http_response_code( $status );
	header( 'Content-Type: text/plain; charset=utf-8' );
	echo $message, "\n";
	return true;
}

if ( preg_match( '#^/(wp-config\.php|wp-content/database|wp-admin/install\.php|wp-admin/setup-config\.php'
	. '|wp-admin/includes|wp-includes/[^/]+\.php$|wp-includes/js/tinymce/langs/.+\.php$'
	. '|install\.php|readme\.html|license\.txt)(/|$)|/\.#', $clean ) ) {
	return sandhaven_refuse( 404, 'Not found.' );
}
if ( $clean === '/wp-login.php' ) {
	return sandhaven_refuse( 403, 'You are logged in through Sandhaven; this site has no login page of its own.' );
}
if ( str_starts_with( $clean, '/wp-content/uploads/' ) ) {
	$file = '/var/wordpress/uploads/' . substr( $clean, strlen( '/wp-content/uploads/' ) );
	if ( preg_match( '/\.(php[0-9]?|phtml|phar)$/i', $file ) || ! is_file( $file ) ) {
		return sandhaven_refuse( 404, 'Not found.' );
	}
	$type = mime_content_type( $file ) ?: 'application/octet-stream';
	header( 'Content-Type: ' . $type );
	header( 'Content-Length: ' . filesize( $file ) );
	header( 'X-Content-Type-Options: nosniff' );
	readfile( $file );
	return true;
}
$target = $_SERVER['DOCUMENT_ROOT'] . $clean;
if ( $clean !== '/' && ( is_file( $target ) || is_dir( $target ) ) ) {
	return false;
}
$_SERVER['SCRIPT_NAME'] = '/index.php';
$_SERVER['PHP_SELF'] = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = $_SERVER['DOCUMENT_ROOT'] . '/index.php';
chdir( $_SERVER['DOCUMENT_ROOT'] );
require $_SERVER['DOCUMENT_ROOT'] . '/index.php';
return true;
