"""Name → adapter factory, filled by the pluggy hook `register_providers`; built-ins use the same hook as plugins.

Adding a provider is one module plus its name in `BUILTIN_PROVIDERS`; nothing else branches on provider names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import pluggy

from portico.config.schema import ProviderConfig
from portico.core.errors import UnknownModel
from portico.providers.base import Provider

hookspec = pluggy.HookspecMarker("portico")
hookimpl = pluggy.HookimplMarker("portico")

BUILTIN_PROVIDERS = (
    "portico.providers.openai_family",
    "portico.providers.mock",
    "portico.providers.bedrock",
    "portico.providers.azure",
    "portico.providers.gemini",
    "portico.providers.cohere",
    "portico.providers.anthropic",
)

ProviderFactory = Callable[[str, ProviderConfig], Provider]


class Register(Protocol):
    def __call__(self, kind: str, factory: ProviderFactory, *, env_key: str | None = None) -> None: ...


class _Specs:
    @hookspec
    def register_providers(self, register: Register) -> None:
        """Call `register(kind, factory, env_key=...)` once per adapter the plugin provides."""


@dataclass(frozen=True, slots=True)
class Adapter:
    kind: str
    factory: ProviderFactory
    env_key: str | None


def load_adapters(extra_modules: tuple[str, ...] = ()) -> dict[str, Adapter]:
    manager = pluggy.PluginManager("portico")
    manager.add_hookspecs(_Specs)
    for name in BUILTIN_PROVIDERS + extra_modules:
        manager.register(importlib.import_module(name))
    manager.load_setuptools_entrypoints("portico")
    adapters: dict[str, Adapter] = {}

    def register(kind: str, factory: ProviderFactory, *, env_key: str | None = None) -> None:
        adapters[kind] = Adapter(kind, factory, env_key)

    manager.hook.register_providers(register=register)
    return adapters


def providers_from_env(adapters: Mapping[str, Adapter], env: Mapping[str, str]) -> dict[str, ProviderConfig]:
    """Embedded defaults: every adapter whose usual key variable is set, plus `mock`, which needs none."""
    found: dict[str, ProviderConfig] = {"mock": ProviderConfig()}
    for kind, adapter in adapters.items():
        if adapter.env_key and env.get(adapter.env_key):
            found[kind] = ProviderConfig(api_key=env[adapter.env_key])
    return found


class ProviderRegistry:
    """The configured providers by name, and the one rule for reading `provider/model` addresses."""

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self._providers = dict(providers)
        self._resolved: dict[str, tuple[Provider, str]] = {}

    @classmethod
    def build(
        cls, configs: Mapping[str, ProviderConfig], adapters: Mapping[str, Adapter] | None = None
    ) -> ProviderRegistry:
        adapters = adapters if adapters is not None else load_adapters()
        built: dict[str, Provider] = {}
        for name, config in configs.items():
            kind = config.type or name
            adapter = adapters.get(kind)
            if adapter is None:
                known = ", ".join(sorted(adapters))
                raise ValueError(f"providers.{name}.type: unknown adapter {kind!r} (known: {known})")
            built[name] = adapter.factory(name, config)
        if "mock" not in built and "mock" in adapters:
            built["mock"] = adapters["mock"].factory("mock", ProviderConfig())
        return cls(built)

    def __contains__(self, name: str) -> bool:
        return name in self._providers

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            raise UnknownModel(f"Unknown provider '{name}'. Configured providers: {self.names_text()}.")
        return provider

    def names_text(self) -> str:
        return ", ".join(sorted(self._providers))

    def all(self) -> Mapping[str, Provider]:
        return self._providers

    def resolve(self, address: str) -> tuple[Provider, str]:
        """`provider/model` → (provider, model). Splits only at a configured provider name: model ids may hold '/'."""
        hit = self._resolved.get(address)
        if hit is not None:
            return hit
        prefix, sep, model = address.partition("/")
        provider = self._providers.get(prefix) if sep else None
        if provider is None or not model:
            raise UnknownModel(
                f"Unknown model '{address}': address models as 'provider/model' with a configured provider "
                f"({self.names_text()})."
            )
        allowed = provider.models()
        if allowed and model not in allowed:
            raise UnknownModel(
                f"Model '{model}' is not offered by provider '{prefix}' (configured models: {', '.join(allowed)}).",
                status=404,
            )
        if len(self._resolved) < 4096:
            self._resolved[address] = (provider, model)
        return provider, model
