"""Errors a person can read: views show their message as it is."""


class LifecycleError(Exception):
    """A request that cannot be carried out. The message is written for the person who asked."""


class InvalidTransition(LifecycleError):
    """The demo is no longer in a state that allows this (someone or something was first)."""
