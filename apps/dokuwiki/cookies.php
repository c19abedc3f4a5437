<?php
/*
 * The app's cookies in the shell's frame (the same file in every PHP recipe;
 * router.php loads it before the app runs).
 *
 * The grain is shown in an iframe on its session host, which is another site
 * than the shell's when the platform is reached over HTTPS or on *.localhost
 * (each *.localhost name is its own site). Browsers then send only cookies
 * marked SameSite=None (which needs Secure) back to the frame, so the app's
 * session cookie, and with it its login state and form tokens, would be lost
 * on every request. Just before PHP sends the headers, every cookie the app
 * set is given "Secure; SameSite=None; Partitioned", as the platform does for
 * its own session cookie (gateway/resolvers.py); Partitioned keeps it in
 * browsers that block other third-party cookies. Elsewhere (plain HTTP on a
 * shared domain, where Secure cookies would be refused) cookies are left as
 * the app made them.
 */
header_register_callback(static function (): void {
    $proto = $_SERVER['HTTP_X_FORWARDED_PROTO'] ?? 'http';
    $host = strtolower(preg_replace('/:[0-9]+$/', '', $_SERVER['HTTP_HOST'] ?? ''));
    if ($proto !== 'https' && $host !== 'localhost' && !str_ends_with($host, '.localhost')) {
        return;
    }
    $cookies = [];
    foreach (headers_list() as $header) {
        if (stripos($header, 'Set-Cookie:') === 0) {
            $cookies[] = trim(substr($header, strlen('Set-Cookie:')));
        }
    }
    if (!$cookies) {
        return;
    }
    header_remove('Set-Cookie');
    foreach ($cookies as $cookie) {
        $cookie = preg_replace('/;\s*(SameSite=[^;]*|Secure|Partitioned)\s*(?=;|$)/i', '', $cookie);
        header("Set-Cookie: $cookie; Secure; SameSite=None; Partitioned", false);
    }
});
