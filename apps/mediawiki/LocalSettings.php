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
$wgCanonicalServer = $sandhavenBase;
$wgScriptPath = '';
$wgResourceBasePath = '';
$wgArticlePath = '/index.php?title=$1';
$wgUsePathInfo = false;
$wgSitename = 'Wiki';
$wgLogos = [
	'1x' => '/resources/assets/change-your-logo.svg',
	'icon' => '/resources/assets/change-your-logo-icon.svg',
];

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
