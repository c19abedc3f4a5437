<?php
/*
 * Plugin Name: Sandhaven single sign-on
 * Description: Logs users in from the Sandhaven gateway's identity headers and maps the grain's roles to WordPress roles.
 *
 * Every request reaching the grain comes through the Sandhaven gateway, which
 * drops any X-Sandstorm-* header a browser sent and adds its own: the user's ID
 * (X-Sandstorm-User-Id, absent for anonymous visitors), their percent-encoded
 * UTF-8 name (X-Sandstorm-Username) and the grain permissions they hold
 * (X-Sandstorm-Permissions, comma-separated). So:
 *
 * - the current user is the WordPress account of the request's user ID
 *   (login "sandhaven-<ID>", made on first visit; "sandhaven-anonymous" for an
 *   anonymous visitor whom a sharing link lets edit; nobody for an anonymous
 *   reader), its display name the user's name;
 * - with `edit` the account's role is administrator, without it subscriber
 *   (set on every request, so a changed share takes effect at once): WordPress
 *   itself refuses a viewer's post, and viewers cannot comment either;
 * - WordPress's own login page is not used (router.php refuses it).
 *
 * Authentication cookies play no part; the gateway already refuses state-changing
 * requests from other sites (CSRF), and WordPress's nonces still apply.
 */

/** Whether this request's user holds the grain's `edit` permission. */
function sandhaven_may_edit(): bool {
	$granted = array_map( 'trim', explode( ',', $_SERVER['HTTP_X_SANDSTORM_PERMISSIONS'] ?? '' ) );
	return in_array( 'edit', $granted, true );
}

/** The WordPress user ID of the request's user, made or updated as needed; 0 for nobody. */
function sandhaven_current_user( $user_id ) {
	static $resolved = null;
	if ( $resolved !== null ) {
		return $resolved;
	}
	$resolved = 0; // while the account is looked up or made, nobody is logged in
	$id = $_SERVER['HTTP_X_SANDSTORM_USER_ID'] ?? '';
	if ( ! preg_match( '/^[0-9A-Za-z_-]{1,48}$/', $id ) ) {
		$id = '';
	}
	$may_edit = sandhaven_may_edit();
	if ( $id === '' ) {
		if ( ! $may_edit ) {
			return 0;
		}
		$id = 'anonymous';
	}
	$name = rawurldecode( $_SERVER['HTTP_X_SANDSTORM_USERNAME'] ?? '' );
	$name = trim( preg_replace( '/[\x00-\x1f\x7f]/u', '', $name ) ?? '' );
	if ( $name === '' ) {
		$name = $id === 'anonymous' ? 'Anonymous' : $id;
	}
	$role = $may_edit ? 'administrator' : 'subscriber';
	$login = 'sandhaven-' . strtolower( $id );
	$user = get_user_by( 'login', $login );
	if ( ! $user ) {
		$made = wp_insert_user( [
			'user_login' => $login,
			'user_pass' => wp_generate_password( 40, true, true ),
			'user_email' => $login . '@users.invalid',
			'display_name' => $name,
			'nickname' => $name,
			'role' => $role,
		] );
		if ( is_wp_error( $made ) ) {
			return 0;
		}
		$resolved = $made;
		return $resolved;
	}
	if ( $user->roles !== [ $role ] ) {
		$user->set_role( $role );
	}
	if ( $user->display_name !== $name ) {
		wp_update_user( [ 'ID' => $user->ID, 'display_name' => $name, 'nickname' => $name ] );
	}
	$resolved = $user->ID;
	return $resolved;
}
add_filter( 'determine_current_user', 'sandhaven_current_user', 100 );

// Viewers and anonymous readers do not comment: comments are closed to them,
// and a comment sent anyway is refused.
add_filter( 'comments_open', static function ( $open ) {
	return $open && sandhaven_may_edit();
} );
add_action( 'pre_comment_on_post', static function () {
	if ( ! sandhaven_may_edit() ) {
		wp_die( 'Viewers cannot comment on this site.', 'Forbidden', [ 'response' => 403 ] );
	}
} );

// Uploads live in the grain's storage; router.php serves them at the usual URL.
add_filter( 'upload_dir', static function ( $dirs ) {
	$dirs['basedir'] = '/var/wordpress/uploads';
	$dirs['baseurl'] = WP_HOME . '/wp-content/uploads';
	$dirs['path'] = $dirs['basedir'] . $dirs['subdir'];
	$dirs['url'] = $dirs['baseurl'] . $dirs['subdir'];
	return $dirs;
} );

// No logging out of the platform's identity from inside the grain.
add_action( 'admin_bar_menu', static function ( $bar ) {
	$bar->remove_node( 'logout' );
}, 100 );

// wp-admin checks WordPress's own login cookie (auth_redirect() is pluggable);
// here the user is whoever the headers say, and an anonymous reader is told so
// instead of being sent to the login page.
if ( ! function_exists( 'auth_redirect' ) ) {
	function auth_redirect() {
		if ( is_user_logged_in() ) {
			return;
		}
		wp_die( 'Anonymous visitors can only read this site.', 'Forbidden', [ 'response' => 403 ] );
	}
}
