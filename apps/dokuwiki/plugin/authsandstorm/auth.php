<?php
/**
 * DokuWiki authentication backend for Sandhaven grains.
 *
 * Every request reaching the grain comes through the Sandhaven gateway, which
 * drops any X-Sandstorm-* header a browser sent and adds its own: the user's
 * ID (X-Sandstorm-User-Id, absent for anonymous visitors), their
 * percent-encoded UTF-8 name (X-Sandstorm-Username) and the app permissions
 * they hold in this grain (X-Sandstorm-Permissions, comma-separated). So the
 * headers are trusted here as DokuWiki's "external" authentication: on each
 * request the user is logged in as their user ID with the group "editor" when
 * they hold the `edit` permission and "viewer" otherwise. The ACL
 * (conf/acl.auth.php) gives @editor full rights and everyone else read only,
 * so DokuWiki itself refuses a viewer's edit.
 *
 * Names seen are remembered in the grain's storage (savedir/sandhaven-users.json)
 * so that page histories show other users' names too.
 */

if (!defined('DOKU_INC')) die();

class auth_plugin_authsandstorm extends \dokuwiki\Extension\AuthPlugin
{
    public function __construct()
    {
        parent::__construct();
        $this->cando['external'] = true;
        $this->cando['logout'] = false;
    }

    /** Logs the request's user in from the identity headers; false when anonymous without `edit`. */
    public function trustExternal($user, $pass, $sticky = false)
    {
        global $USERINFO;
        $permissions = array_map('trim', explode(',', $_SERVER['HTTP_X_SANDSTORM_PERMISSIONS'] ?? ''));
        $canEdit = in_array('edit', $permissions, true);
        $id = $_SERVER['HTTP_X_SANDSTORM_USER_ID'] ?? '';
        if (!preg_match('/^[0-9A-Za-z_-]{1,64}$/', $id)) {
            $id = '';
        }
        $name = rawurldecode($_SERVER['HTTP_X_SANDSTORM_USERNAME'] ?? '');
        $name = trim(preg_replace('/[\x00-\x1f\x7f]/u', '', $name) ?? '');
        if ($id === '') {
            if (!$canEdit) {
                // An anonymous reader: nobody is logged in, @ALL's read right applies.
                unset($_SERVER['REMOTE_USER']);
                $USERINFO = null;
                if (isset($_SESSION[DOKU_COOKIE]['auth'])) unset($_SESSION[DOKU_COOKIE]['auth']);
                return false;
            }
            // Anonymous holders of a sharing link that grants editing.
            $id = 'anonymous';
            if ($name === '') $name = 'Anonymous';
        }
        if ($name === '') $name = $id;
        $USERINFO = [
            'name' => $name,
            'mail' => '',
            'grps' => [$canEdit ? 'editor' : 'viewer'],
        ];
        $_SERVER['REMOTE_USER'] = $id;
        $_SESSION[DOKU_COOKIE]['auth']['user'] = $id;
        $_SESSION[DOKU_COOKIE]['auth']['pass'] = '';
        $_SESSION[DOKU_COOKIE]['auth']['info'] = $USERINFO;
        $this->rememberName($id, $name);
        return true;
    }

    /** Users are never checked by password: only the gateway's headers log anyone in. */
    public function checkPass($user, $pass)
    {
        return false;
    }

    /** The remembered name of a user ID (for page histories), or false when never seen. */
    public function getUserData($user, $requireGroups = true)
    {
        $names = $this->names();
        if (!isset($names[$user])) return false;
        return ['name' => $names[$user], 'mail' => '', 'grps' => []];
    }

    private function namesFile(): string
    {
        global $conf;
        return $conf['savedir'] . '/sandhaven-users.json';
    }

    private function names(): array
    {
        $text = @file_get_contents($this->namesFile());
        $names = $text === false ? [] : json_decode($text, true);
        return is_array($names) ? $names : [];
    }

    private function rememberName(string $id, string $name): void
    {
        $names = $this->names();
        if (($names[$id] ?? null) === $name) return;
        $names[$id] = $name;
        $file = $this->namesFile();
        $tmp = $file . '.' . getmypid() . '.tmp';
        if (file_put_contents($tmp, json_encode($names, JSON_UNESCAPED_UNICODE)) !== false) {
            rename($tmp, $file);
        }
    }
}
