<?php
/*
 * Sandhaven's settings for DokuWiki, over Debian's defaults (conf/dokuwiki.php,
 * copied from /etc/dokuwiki at build). The package is read-only: everything the
 * wiki writes lives under /var/dokuwiki/data, the grain's storage.
 */
$conf['title']          = 'DokuWiki';
$conf['license']        = 'cc-by-sa';
$conf['savedir']        = '/var/dokuwiki/data';
$conf['useacl']         = 1;
$conf['authtype']       = 'authsandstorm';
// Names, not the opaque user IDs, in page footers and histories.
$conf['showuseras']     = 'username';
// Nobody administers the wiki from the browser: its configuration is part of
// the read-only package. Accounts come from the platform, so DokuWiki's own
// login, registration and profile pages are off.
$conf['superuser']      = '';
$conf['manager']        = '';
$conf['disableactions'] = 'register,resendpwd,profile,profile_delete,login,logout,admin';
$conf['updatecheck']    = 0;
// The grain has no network: no pings to the DokuWiki site, no mail.
$conf['mailfrom']       = '';
$conf['subscribers']    = 0;
