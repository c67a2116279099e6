"""Credentials for the azure backend: azure-identity only, imported on first use (never by %load_ext).

Tokens are cached by azure-identity; aml-magics never writes, prints or logs one.
"""
from __future__ import annotations

from typing import Any, Callable

from ...core.config import find_azure_config, read_azure_config
from ...core.errors import AuthError, InvalidInput
from .rest import WorkspaceRef


def credential(kind: str = "default", *, prompt: Callable[[str], Any] = print, passed: Any = None) -> Any:
    """``default`` (DefaultAzureCredential), ``device-code`` (for workshops), or a credential you pass."""
    if passed is not None:
        if not hasattr(passed, "get_token"):
            raise InvalidInput("the credential must have get_token(scope), like azure.identity credentials")
        return passed
    try:
        import azure.identity as identity
    except ImportError:
        raise AuthError("the azure backend needs azure-identity: pip install 'aml-magics[azure]'") from None
    if kind == "device-code":
        return identity.DeviceCodeCredential(prompt_callback=lambda uri, code, expires: prompt(
            f"To sign in, open {uri} and enter the code {code}."))
    if kind == "default":
        return identity.DefaultAzureCredential()
    raise InvalidInput(f"unknown sign-in {kind!r}: use default or device-code")


def workspace_ref(subscription: str | None = None, resource_group: str | None = None, workspace: str | None = None,
                  *, start: str | None = None) -> WorkspaceRef:
    """The workspace named on the command line, else the ``config.json`` Azure ML's SDKs would find."""
    given = [subscription, resource_group, workspace]
    if all(given):
        return WorkspaceRef(subscription, resource_group, workspace)  # type: ignore[arg-type]
    if any(given):
        raise InvalidInput("give all of --subscription, --resource-group and --workspace, or none (config.json)")
    path = find_azure_config(start)
    if path is None:
        raise InvalidInput("no config.json found here or in any parent folder (.azureml/, aml_config/ or .): "
                           "download it from the Azure ML studio, or %aml connect --subscription S "
                           "--resource-group RG --workspace W")
    c = read_azure_config(path)
    return WorkspaceRef(c["subscription_id"], c["resource_group"], c["workspace_name"])
