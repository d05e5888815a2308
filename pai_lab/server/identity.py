"""Identity for a standalone ``pai server``: the server token is the owner, named tokens are members.

This lets a team (or a test) act as several users without JupyterHub: each member gets a token
of their own and the role checks apply to them.
"""

from __future__ import annotations

import hmac

from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import Dict, Unicode


class NamedTokenIdentityProvider(IdentityProvider):
    user_tokens = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="Further users of this server: {username: token}. Each token authenticates as its user.",
    )
    owner_name = Unicode("", config=True, help="The user the server's own token authenticates as.")

    async def get_user(self, handler):
        presented = self.get_token(handler)
        if presented:
            for username, token in self.user_tokens.items():
                if token and hmac.compare_digest(presented.encode(), token.encode()):
                    handler._token_authenticated = True
                    return User(username=username, name=username, display_name=username, initials=username[:1].upper())
        user = self._get_user(handler)
        if hasattr(user, "__await__"):
            user = await user
        if user is None:
            return None
        owner = self.owner_name or user.username
        return User(username=owner, name=owner, display_name=owner, initials=owner[:1].upper())
