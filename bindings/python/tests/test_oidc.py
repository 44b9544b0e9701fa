"""OpenID Connect id_tokens through the uniffi bindings, against oidc-provider: the validated
claims in session_info, and a refused id_token (another subject) that stores nothing."""

import pytest

import tokenvault as tv


def _signed_in(vault, op, account="player-1", **oidc):
    vault.load_profile_json(op.profile_json(**oidc))
    boot = op.bootstrap(account)
    vault.store(
        tv.NewSession(
            account=account,
            profile="op",
            access_token=boot["access_token"],
            refresh_credential=boot["refresh_token"],
            expires_in_secs=boot["expires_in"],
        )
    )


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_refresh_shows_the_validated_id_token_claims(oidc_factory, vault, alg):
    op = oidc_factory(alg)
    _signed_in(vault, op)
    assert vault.session_info("player-1").identity is None
    vault.force_refresh("player-1")
    info = vault.session_info("player-1")
    claims = info.identity
    assert claims is not None
    assert claims.iss() == op.issuer
    assert claims.sub() == "player-1"
    assert claims.name() == "Player player-1"
    assert claims.email() == "player-1@example.test"
    assert claims.email_verified() is True
    assert claims.picture() == "https://example.test/avatars/player-1.png"
    assert claims.locale() == "en-GB"
    assert claims.phone_number() is None
    # Personal data stays out of the printed record.
    text = str(info) + repr(info) + str(claims) + repr(claims)
    assert "example.test" not in text and "Player" not in text, text
    assert op.stats()["jwks_requests"] == 1


def test_an_id_token_for_another_subject_stores_nothing(oidc_factory, vault):
    op = oidc_factory("ES256")
    _signed_in(vault, op)
    vault.force_refresh("player-1")
    before = vault.session_info("player-1")
    op.next_sub("someone-else")
    with pytest.raises(tv.TokenVaultError.Protocol) as e:
        vault.force_refresh("player-1")
    assert "someone-else" not in str(e.value)
    after = vault.session_info("player-1")
    assert after.generation == before.generation
    assert after.identity == before.identity
