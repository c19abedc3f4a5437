# acl.auth.php
# <?php exit()?>
# Sandhaven: the authsandstorm backend puts users holding the grain's `edit`
# permission in @editor; everyone else only reads.
*	@ALL	1
*	@editor	16
