"""Credentials for the azure backend: azure-identity only, imported on first use (never by %load_ext).

Tokens are cached by azure-identity; aml-magics never writes, prints or logs one.
"""
from __future__ import annotations

import os
from typing import Any, Callable
from urllib.parse import urlsplit

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
        options = {}
        if _private_authority(os.environ.get("AZURE_AUTHORITY_HOST", "")):
            options["disable_instance_discovery"] = True  # Azure Stack, ADFS: Microsoft cannot vouch for it
        return identity.DeviceCodeCredential(prompt_callback=lambda uri, code, expires: prompt(
            f"To sign in, open {uri} and enter the code {code}."), **options)
    if kind == "default":
        return identity.DefaultAzureCredential()
    raise InvalidInput(f"unknown sign-in {kind!r}: use default or device-code")


# Microsoft's own sign-in hosts (public and national clouds): their authorities are checked by instance discovery
MICROSOFT_LOGIN_HOSTS = {"login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net",
                         "login.chinacloudapi.cn", "login.partner.microsoftonline.cn", "login.microsoftonline.us",
                         "login-us.microsoftonline.com", "login.usgovcloudapi.net", "login.microsoftonline.de"}


def _private_authority(host: str) -> bool:
    """``$AZURE_AUTHORITY_HOST`` (which azure-identity reads) names an authority that is not Microsoft's."""
    if not host.strip():
        return False
    name = urlsplit(host if "://" in host else f"https://{host}").hostname or ""
    return name.lower() not in MICROSOFT_LOGIN_HOSTS


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
