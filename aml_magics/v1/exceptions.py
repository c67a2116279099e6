"""``azureml.exceptions``: v1's exception names, each one of ours (so ``except ComputeTargetException`` and
``except AmlError`` both catch what they should)."""
from __future__ import annotations

from ..core.errors import AmlError, AuthError, InvalidInput, NotFound, NotSupported

__all__ = ["AzureMLException", "UserErrorException", "ComputeTargetException", "WebserviceException",
           "ModelNotFoundException", "ExperimentExecutionException", "ActivityFailedException",
           "AuthenticationException", "ProjectSystemException", "WorkspaceException", "ModelPathNotFoundException",
           "ExperimentTimeoutException"]


class AzureMLException(AmlError):
    """v1's base exception."""


class UserErrorException(AzureMLException, InvalidInput):
    pass


class ComputeTargetException(AzureMLException, NotFound):
    pass


class WebserviceException(AzureMLException):
    pass


class ModelNotFoundException(AzureMLException, NotFound):
    pass


ModelPathNotFoundException = ModelNotFoundException


class ExperimentExecutionException(AzureMLException):
    pass


class ActivityFailedException(AzureMLException):
    pass


class ExperimentTimeoutException(AzureMLException):
    pass


class AuthenticationException(AzureMLException, AuthError):
    pass


class ProjectSystemException(AzureMLException, NotFound):
    """What v1 raised when a workspace is missing."""


WorkspaceException = ProjectSystemException
UnsupportedV1Name = NotSupported
