<?php
/*
 * Replaces Debian's inc/preload.php in the package: the configuration is the
 * package's read-only conf/ directory (Debian's reads /etc/dokuwiki, which a
 * grain does not have).
 */
if (!defined('DOKU_CONF')) define('DOKU_CONF', '/opt/app/conf/');
