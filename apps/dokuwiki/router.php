<?php
/*
 * Router of PHP's built-in server for DokuWiki (php8.2 -S … router.php).
 *
 * DokuWiki's own index.php is a router for the built-in server (it refuses
 * data/, conf/, bin/ and inc/ and hands every other path to the script or
 * static file, or to doku.php). This adds what DokuWiki's .htaccess files
 * refuse on Apache and its router does not: vendor/, install.php, plugins' and
 * templates' conf/ and _test/, dotfiles; paths are normalised first so that
 * "/lib/../inc/x.php" or "//inc/x.php" cannot slip past.
 */
require __DIR__ . '/cookies.php';

// Not parse_url: it reads "//vendor/x" as a host name and a path "/x".
$path = rawurldecode(explode('?', $_SERVER['REQUEST_URI'] ?? '/', 2)[0]);
$parts = [];
foreach (explode('/', $path) as $part) {
    if ($part === '' || $part === '.') continue;
    if ($part === '..') { array_pop($parts); continue; }
    $parts[] = $part;
}
$clean = '/' . implode('/', $parts);
if (preg_match('#^/(inc|vendor|bin|conf|data|install\.php)(/|$)|^/lib/(plugins|tpl)/[^/]+/(conf|_test)(/|$)|/\.#', $clean)) {
    http_response_code(404);
    header('Content-Type: text/plain; charset=utf-8');
    echo "Not found.\n";
    return true;
}
return require $_SERVER['DOCUMENT_ROOT'] . '/index.php';
