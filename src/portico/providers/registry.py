"""Name → adapter factory, filled by the pluggy hook `register_providers`; built-ins use the same hook as plugins.

Adding a provider is one module plus its name in `BUILTIN_PROVIDERS`; nothing else branches on provider names.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import pluggy
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from portico.config.schema import AdapterOptions, ProviderConfig
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
    def __call__(
        self,
        kind: str,
        factory: ProviderFactory,
        *,
        env_key: str | None = None,
        options: type[AdapterOptions] = AdapterOptions,
    ) -> None: ...


class _Specs:
    @hookspec
    def register_providers(self, register: Register) -> None:
        """Call `register(kind, factory, env_key=..., options=...)` once per adapter the plugin provides;
        `options` is an `AdapterOptions` subclass declaring the keys the adapter takes (none by default)."""


@dataclass(frozen=True, slots=True)
class Adapter:
    kind: str
    factory: ProviderFactory
    env_key: str | None
    options: type[AdapterOptions] = AdapterOptions


def load_adapters(extra_modules: tuple[str, ...] = ()) -> dict[str, Adapter]:
    manager = pluggy.PluginManager("portico")
    manager.add_hookspecs(_Specs)
    for name in BUILTIN_PROVIDERS + extra_modules:
        manager.register(importlib.import_module(name))
    manager.load_setuptools_entrypoints("portico")
    adapters: dict[str, Adapter] = {}

    def register(
        kind: str,
        factory: ProviderFactory,
        *,
        env_key: str | None = None,
        options: type[AdapterOptions] = AdapterOptions,
    ) -> None:
        adapters[kind] = Adapter(kind, factory, env_key, options)

    manager.hook.register_providers(register=register)
    return adapters


def providers_from_env(adapters: Mapping[str, Adapter], env: Mapping[str, str]) -> dict[str, ProviderConfig]:
    """Embedded defaults: every adapter whose usual key variable is set, plus `mock`, which needs none."""
    found: dict[str, ProviderConfig] = {"mock": ProviderConfig()}
    for kind, adapter in adapters.items():
        if adapter.env_key and env.get(adapter.env_key):
            found[kind] = ProviderConfig(api_key=env[adapter.env_key])
    return found


def check_provider(name: str, config: ProviderConfig, adapters: Mapping[str, Adapter]) -> list[str]:
    """Every problem of one provider entry, each with its key path: an unknown adapter, or a key that neither
    `ProviderConfig` nor the adapter's declared options know (with the closest known key), or a mistyped option."""
    where = f"providers.{name}"
    kind = config.type or name
    adapter = adapters.get(kind)
    if adapter is None:
        kinds = ", ".join(sorted(adapters))
        return [f"{where}.type: unknown adapter {kind!r}{_did_you_mean(kind, list(adapters))} (known: {kinds})"]
    try:
        adapter.options.model_validate(config.options)
    except ValidationError as exc:
        known = [*ProviderConfig.model_fields, *adapter.options.model_fields]
        return [_option_problem(where, error, known) for error in exc.errors()]
    return []


def _option_problem(where: str, error: ErrorDetails, known: list[str]) -> str:
    path = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{where}.{path}: unknown key{_did_you_mean(path, known)}"
    return f"{where}.{path}: {error['msg']}"


def _did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
        problems = [problem for name, config in configs.items() for problem in check_provider(name, config, adapters)]
        if problems:
            raise ValueError("\n".join(problems))
        for name, config in configs.items():
            built[name] = adapters[config.type or name].factory(name, config)
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
