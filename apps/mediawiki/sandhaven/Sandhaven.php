<?php
/*
 * Single sign-on and roles for MediaWiki in a Sandhaven grain.
 *
 * Every request reaching the grain comes through the Sandhaven gateway, which
 * drops any X-Sandstorm-* header a browser sent and adds its own: the user's ID
 * (X-Sandstorm-User-Id, absent for anonymous visitors), their percent-encoded
 * UTF-8 name (X-Sandstorm-Username) and the grain permissions they hold
 * (X-Sandstorm-Permissions, comma-separated). So:
 *
 * - the only session provider is SandhavenSessionProvider, which logs the
 *   request's user in as the MediaWiki account tied to their user ID (created
 *   on first visit); nobody logs in with a password or makes an account;
 * - a user holding `edit` gets the rights of MediaWiki's "sysop" group (edit,
 *   create, move, upload, delete, protect); everyone else keeps only the
 *   rights in SANDHAVEN_READ_RIGHTS, so MediaWiki itself refuses their writes.
 */

require_once __DIR__ . '/SandhavenSessionProvider.php';

// Rights a viewer keeps: reading, and their own preferences and watchlist,
// which change no page.
const SANDHAVEN_READ_RIGHTS = [
	'read', 'viewmyprivateinfo', 'editmyprivateinfo', 'viewmywatchlist',
	'editmywatchlist', 'editmyoptions', 'autocreateaccount',
];

/** Whether this request's user holds the grain's `edit` permission. */
function sandhavenMayEdit(): bool {
	$granted = array_map( 'trim', explode( ',', $_SERVER['HTTP_X_SANDSTORM_PERMISSIONS'] ?? '' ) );
	return in_array( 'edit', $granted, true );
}

$wgSessionProviders = [
	SandhavenSessionProvider::class => [
		'class' => SandhavenSessionProvider::class,
		// The session cookie takes the SameSite attribute LocalSettings.php chose.
		'args' => [ [ 'sessionCookieOptions' => [ 'sameSite' => $wgCookieSameSite ?? '' ] ] ],
	],
];

// Nobody makes accounts or logs in by hand; accounts are made on first visit.
$wgGroupPermissions['*']['createaccount'] = false;
$wgGroupPermissions['*']['autocreateaccount'] = true;
$wgGroupPermissions['*']['edit'] = false;
$wgGroupPermissions['*']['createpage'] = false;
$wgGroupPermissions['*']['createtalk'] = false;
$wgGroupPermissions['*']['writeapi'] = false;

// The request's own user with `edit` acts with the sysop group's rights;
// anyone else, whatever groups the database gives them, only with the read
// rights. (The check is on the request's user: other users' rights, shown on
// their pages, are left alone.)
$wgHooks['UserGetRights'][] = static function ( $user, &$rights ) {
	global $wgGroupPermissions;
	if ( SandhavenSessionProvider::isRequestUser( $user ) && sandhavenMayEdit() ) {
		foreach ( [ 'user', 'autoconfirmed', 'sysop' ] as $group ) {
			foreach ( $wgGroupPermissions[$group] ?? [] as $right => $granted ) {
				if ( $granted ) {
					$rights[] = $right;
				}
			}
		}
		$rights = array_values( array_unique( $rights ) );
	} else {
		$rights = array_values( array_intersect( $rights, SANDHAVEN_READ_RIGHTS ) );
	}
};

// The login, logout and account pages have nothing to do in a grain.
$wgHooks['SpecialPage_initList'][] = static function ( &$list ) {
	foreach ( [ 'Userlogin', 'Userlogout', 'CreateAccount', 'ChangePassword',
		'PasswordReset', 'ChangeEmail', 'RemoveCredentials', 'LinkAccounts',
		'UnlinkAccounts', 'ChangeCredentials' ] as $name ) {
		unset( $list[$name] );
	}
};
$wgHooks['SkinTemplateNavigation::Universal'][] = static function ( $skin, &$links ) {
	unset( $links['user-menu']['logout'], $links['user-menu']['login'],
		$links['user-menu']['createaccount'], $links['user-menu']['login-private'],
		$links['user-menu']['anonlogin'] );
};
