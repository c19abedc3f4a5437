<?php
/*
 * Plugins that make no sense in a grain: the extension manager and the
 * popularity feedback need the network and a writable install; the user
 * manager and the other auth backends are replaced by authsandstorm.
 */
$plugins['testing']      = 0;
$plugins['extension']    = 0;
$plugins['popularity']   = 0;
$plugins['usermanager']  = 0;
$plugins['authad']       = 0;
$plugins['authldap']     = 0;
$plugins['authpdo']      = 0;
$plugins['authplain']    = 0;
