<?php
/*
 * A MediaWiki session provider trusting the Sandhaven gateway's identity
 * headers (see Sandhaven.php for why they can be trusted).
 */

use MediaWiki\MediaWikiServices;
use MediaWiki\Session\ImmutableSessionProviderWithCookie;
use MediaWiki\Session\SessionInfo;
use MediaWiki\Session\UserInfo;
use MediaWiki\User\UserNameUtils;

/**
 * Logs every request in as the MediaWiki account of its X-Sandstorm-User-Id
 * (anonymous when there is none, unless the visitor may edit: then the
 * account "Anonymous"). The account's name is the user's X-Sandstorm-Username
 * the first time they come, made unique; it stays theirs when they rename
 * themselves (the ID → name table is /var/lib/mediawiki/sandhaven-users.json).
 * The session cookie's name is derived from the user ID, so two users never
 * share a session (and its edit tokens).
 */
class SandhavenSessionProvider extends ImmutableSessionProviderWithCookie {
	private const USERS_FILE = '/var/lib/mediawiki/sandhaven-users.json';

	/** @var string|null The account name this request is logged in as. */
	private static $requestUserName = null;

	public function __construct( $params = [] ) {
		$id = self::userId() ?? '';
		parent::__construct( [
			'sessionCookieName' => 'sandhaven_' . substr( hash( 'sha256', $id ), 0, 16 ),
		] + $params );
	}

	/** Whether $user is the account this request is logged in as. */
	public static function isRequestUser( $user ): bool {
		return self::$requestUserName !== null && $user->getName() === self::$requestUserName;
	}

	public function provideSessionInfo( WebRequest $request ) {
		$id = self::userId();
		if ( $id === null ) {
			$userInfo = UserInfo::newAnonymous();
		} else {
			self::$requestUserName = $this->accountName( $id );
			$userInfo = UserInfo::newFromName( self::$requestUserName, true );
		}
		$sessionId = $this->getSessionIdFromCookie( $request );
		return new SessionInfo( SessionInfo::MAX_PRIORITY, [
			'provider' => $this,
			'id' => $sessionId,
			'userInfo' => $userInfo,
			// A logged-in user's session is kept from the first page on (as
			// MediaWiki's own login does): its edit tokens must outlive the page
			// that shows the edit form.
			'persisted' => $id !== null || $sessionId !== null,
			'forceUse' => true,
		] );
	}

	/** The user ID of the request (or "anonymous" for an anonymous editor), else null. */
	private static function userId(): ?string {
		$id = $_SERVER['HTTP_X_SANDSTORM_USER_ID'] ?? '';
		if ( preg_match( '/^[0-9A-Za-z_-]{1,64}$/', $id ) ) {
			return $id;
		}
		return sandhavenMayEdit() ? 'anonymous' : null;
	}

	/** The account name tied to $id, choosing and recording one on first sight. */
	private function accountName( string $id ): string {
		$lock = fopen( self::USERS_FILE . '.lock', 'c' );
		flock( $lock, LOCK_EX );
		try {
			$text = @file_get_contents( self::USERS_FILE );
			$names = $text === false ? [] : json_decode( $text, true );
			if ( !is_array( $names ) ) {
				$names = [];
			}
			if ( isset( $names[$id] ) ) {
				return $names[$id];
			}
			$name = $this->freeName( $id, $names );
			$names[$id] = $name;
			$tmp = self::USERS_FILE . '.tmp';
			file_put_contents( $tmp, json_encode( $names, JSON_UNESCAPED_UNICODE ) );
			rename( $tmp, self::USERS_FILE );
			return $name;
		} finally {
			flock( $lock, LOCK_UN );
			fclose( $lock );
		}
	}

	/** A valid account name no other ID holds: the user's name, else with a number. */
	private function freeName( string $id, array $names ): string {
		$services = MediaWikiServices::getInstance();
		$utils = $services->getUserNameUtils();
		$lookup = $services->getUserIdentityLookup();
		$wanted = rawurldecode( $_SERVER['HTTP_X_SANDSTORM_USERNAME'] ?? '' );
		$wanted = trim( preg_replace( '/[\x00-\x1f\x7f#<>\[\]|{}\/@:=]+/u', ' ', $wanted ) ?? '' );
		if ( $wanted === '' ) {
			$wanted = $id === 'anonymous' ? 'Anonymous' : 'User ' . substr( $id, 0, 8 );
		}
		for ( $n = 1; $n < 1000; $n++ ) {
			$candidate = $utils->getCanonical( $n === 1 ? $wanted : "$wanted $n", UserNameUtils::RIGOR_CREATABLE );
			if ( $candidate === false ) {
				$wanted = 'User ' . substr( $id, 0, 8 );
				continue;
			}
			$taken = in_array( $candidate, $names, true );
			$existing = $lookup->getUserIdentityByName( $candidate );
			if ( !$taken && !( $existing && $existing->isRegistered() ) ) {
				return $candidate;
			}
		}
		return 'User ' . $id;
	}
}
