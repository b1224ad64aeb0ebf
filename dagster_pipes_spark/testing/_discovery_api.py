"""``GET /.well-known/databricks-config``: the host metadata a workspace serves to any client.

databricks-sdk 0.16x asks for it whenever a ``Config`` is built (unauthenticated, before anything
else) to learn the workspace id, account id, cloud and OIDC root, and logs a warning when the host
answers 404. The emulator serves a workspace's document; it is never answered with an injected fault
(a static document served by the front end, and a failure here would only delay every client).
"""

from __future__ import annotations

from ._http import Request, Response, Router

__all__ = ["DiscoveryApi"]


class DiscoveryApi:
    """The discovery document of one emulated workspace.

    Args:
        workspace_id: The numeric workspace id (as a string, as the platform sends it).
        account_id: The id of the account that owns the workspace.
        cloud: ``aws``, ``azure`` or ``gcp``.
    """

    def __init__(self, *, workspace_id: str, account_id: str, cloud: str = "aws") -> None:
        self.workspace_id = workspace_id
        self.account_id = account_id
        self.cloud = cloud

    def register(self, router: Router) -> None:
        """Add the (unauthenticated, never faulted) discovery route."""
        path = "/.well-known/databricks-config"
        router.add("GET", path.replace(".", r"\."), self.get, name=f"GET {path}", auth=False, faults=False)

    def get(self, req: Request) -> Response:
        """The host metadata, with the OIDC root on the host the client used."""
        host = req.header("host") or "127.0.0.1"
        return Response.json(
            {
                "oidc_endpoint": f"http://{host}/oidc",
                "account_id": self.account_id,
                "workspace_id": self.workspace_id,
                "cloud": self.cloud,
            }
        )
