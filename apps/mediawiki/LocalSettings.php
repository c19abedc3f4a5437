<?php
/*
 * MediaWiki's settings in a Sandhaven grain (see docs/developing/mediawiki.md).
 * MediaWiki finds this file through MW_CONFIG_FILE (set by launcher.sh).
 *
 * First the settings MediaWiki's installer wrote on the grain's first start
 * (SQLite database, secret keys, skins), then Sandhaven's: the wiki's address
 * from each request, uploads in the grain's storage, users and rights from the
 * platform's identity headers (sandhaven/Sandhaven.php).
 */
if ( !defined( 'MEDIAWIKI' ) ) {
	exit;
}
require '/var/lib/mediawiki/installed/LocalSettings.php';

// SQLite transactions take the write lock when they begin (IMMEDIATE). With
// several PHP workers, two DEFERRED transactions that both read and then write
// deadlock, and SQLite answers one of them "database is locked" at once
// instead of waiting (seen when a new user's account is made while another
// request writes).
$wgDBservers = [ [
	'host' => '', 'dbname' => $wgDBname, 'tablePrefix' => $wgDBprefix ?? '',
	'type' => 'sqlite', 'dbDirectory' => $wgSQLiteDataDir, 'user' => '', 'password' => '',
	'flags' => DBO_DEFAULT, 'load' => 1, 'trxMode' => 'IMMEDIATE',
] ];

// The grain is reached on a different host in every session, and MediaWiki
// stores none: the address is the session's, from the gateway's
// X-Sandstorm-Base-Path (checked to be a bare origin), else the Host header.
$sandhavenBase = $_SERVER['HTTP_X_SANDSTORM_BASE_PATH'] ?? '';
if ( !preg_match( '#^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$#', $sandhavenBase ) ) {
	$sandhavenHost = $_SERVER['HTTP_HOST'] ?? '';
	$sandhavenBase = preg_match( '#^[A-Za-z0-9.-]+(:[0-9]{1,5})?$#', $sandhavenHost )
		? ( ( $_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '' ) === 'https' ? 'https' : 'http' ) . "://$sandhavenHost"
		: 'http://localhost';
}
$wgServer = $sandhavenBase;

// The grain is shown in an iframe on its session host, which is another site
// than the shell's when the platform is reached over HTTPS or on *.localhost
// (each *.localhost name is its own site). Browsers then send back to the frame
// only cookies marked SameSite=None (which needs Secure), so MediaWiki's
// session cookie, and with it its edit tokens, would be lost on every request.
// Its cookies get "Secure; SameSite=None; Partitioned" there, as the
// platform's own session cookie does (gateway/resolvers.py); Partitioned keeps
// them in browsers that block other third-party cookies (PHP writes the value
// after "SameSite=" as given). Elsewhere (plain HTTP on a shared domain, where
// Secure cookies would be refused) MediaWiki's defaults stay.
$sandhavenHostName = strtolower( preg_replace( '#^https?://|:[0-9]+$#', '', $sandhavenBase ) );
if ( str_starts_with( $sandhavenBase, 'https://' ) || $sandhavenHostName === 'localhost'
	|| str_ends_with( $sandhavenHostName, '.localhost' ) ) {
	$wgCookieSecure = true;
	$wgCookieSameSite = 'None; Partitioned';
}
$wgCanonicalServer = $sandhavenBase;
$wgScriptPath = '';
$wgResourceBasePath = '';
$wgArticlePath = '/index.php?title=$1';
$wgUsePathInfo = false;
$wgSitename = 'Wiki';
// The installer's placeholder logo asks the admin to change it; a grain's wiki
// shows Debian's generic wiki logo instead.
$wgLogos = [ '1x' => '/resources/assets/wiki.png' ];

// The wiki lives in the shell's frame. MediaWiki's edit pages would send
// X-Frame-Options: DENY with a script that breaks out of frames (taking the
// whole shell tab away); the platform already limits who may frame a grain
// (its Content-Security-Policy frame-ancestors is the shell), so framing is
// allowed here.
$wgEditPageFrameOptions = false;
$wgBreakFrames = false;

// Files the wiki writes live in the grain's storage, which Debian's
// /usr/share/mediawiki/images link points to inside the grain.
$wgUploadDirectory = '/var/lib/mediawiki/images';
$wgUploadPath = '/images';
$wgEnableUploads = true;
$wgCacheDirectory = '/var/lib/mediawiki/cache';
$wgTmpDirectory = '/var/tmp';
$wgUseImageMagick = false;
$wgSessionCacheType = CACHE_DB;
$wgParserCacheType = CACHE_DB;

// A grain has no network and no mail.
$wgEnableEmail = false;
$wgEnableUserEmail = false;
$wgPingback = false;
$wgUseInstantCommons = false;

require __DIR__ . '/sandhaven/Sandhaven.php';
