<?php
/*
 * Router of PHP's built-in server for MediaWiki (php8.2 -S … router.php), with
 * Debian's /usr/share/mediawiki as document root.
 *
 * Returns false to let the server serve the file asked for (a static file, or
 * an entry point such as index.php, load.php or api.php it runs). MediaWiki's
 * .htaccess files keep its internals unreachable on Apache; the built-in
 * server ignores them, so those directories are refused here, and so is the
 * web installer (mw-config), since the grain installs itself, and any PHP
 * file under images/ (uploads: the built-in server would run it). Paths are
 * normalised first so that "/x/../includes" or "//includes" cannot slip past.
 */
// Not parse_url: it reads "//includes/x" as a host name and a path "/x".
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
$internal = '#^/(includes|maintenance|languages|vendor|cache|mw-config|tests|docs|serialized'
	. '|config|LocalSettings\.php|composer\.(json|lock)|extensions(-core)?/[^/]+/(includes|maintenance|tests|sql))(/|$)'
	. '|^/images/.*\.(php[0-9]?|phtml|phar)$|/\.#';
if ( preg_match( $internal, $clean ) ) {
	http_response_code( 404 );
	header( 'Content-Type: text/plain; charset=utf-8' );
	echo "Not found.\n";
	return true;
}
return false;
