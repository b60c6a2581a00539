"""Hostile alert text for the runner's tests (issue 14): Jinja expressions and blocks, lookups, template
breakouts and shell metacharacters. Each payload names a canary file; if anything ever evaluates the text
(ansible-core templating it, a shell running it), that file appears. A test renders every payload once per
alert field, so the canary's name says which payload, in which field, ran:
`dmcanary.<token>.<field>.<index>`.

Use `Canaries` for the names and the search, `PAYLOADS` for the texts. Every text here is data that must
reach a playbook unchanged."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

CANARY_PREFIX = "dmcanary"
# Replaced by the canary's absolute path, or by its bare name (a file in the evaluating process's cwd).
PATH_MARK = "@CANARY@"
NAME_MARK = "@CANARY_NAME@"
# The runner refuses longer or unprintable fingerprints (400); a payload used as one must fit.
MAX_FINGERPRINT = 128


@dataclass(frozen=True, slots=True)
class Payload:
    index: int
    name: str
    template: str

    def text(self, canaries: Canaries, field: str) -> str:
        """This payload for one alert field, with its own canary."""
        return self.template.replace(PATH_MARK, str(canaries.path(field, self.index))).replace(
            NAME_MARK, canaries.name(field, self.index)
        )


_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("pipe lookup", "{{ lookup('pipe', 'touch @CANARY@') }}"),
    ("fully qualified pipe lookup", "{{ lookup('ansible.builtin.pipe','touch @CANARY@') }}"),
    ("query", "{{ query('pipe', 'touch @CANARY@') }}"),
    ("lines lookup", "{{ lookup('ansible.builtin.lines', 'touch @CANARY@') }}"),
    ("for block", "{% for x in [1] %}{{ lookup('pipe','touch @CANARY@') }}{% endfor %}"),
    ("if block", "{% if lookup('pipe','touch @CANARY@') is string %}yes{% endif %}"),
    ("set block", "{% set x = lookup('pipe','touch @CANARY@') %}{{ x }}"),
    ("statement with whitespace control", "{%- set _ = lookup('pipe','touch @CANARY@') -%}"),
    ("comments around", "{# note #}{{ lookup('pipe','touch @CANARY@') }}{# #}"),
    ("raw block, then an expression", "{% raw %}{{ x }}{% endraw %}{{ lookup('pipe','touch @CANARY@') }}"),
    ("raw breakout", "{% endraw %}{{ lookup('pipe','touch @CANARY@') }}{% raw %}"),
    ("!unsafe text", "!unsafe {{ lookup('pipe','touch @CANARY@') }}"),
    ("template inside a string literal", "{{ \"{{ lookup('pipe','touch @CANARY@') }}\" }}"),
    ("template built from escaped braces", "{{ '{{' }} lookup('pipe','touch @CANARY@') {{ '}}' }}"),
    (
        "class walk, then a lookup",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}{{ lookup('pipe','touch @CANARY@') }}",
    ),
    ("cycler globals", "{{ cycler.__init__.__globals__.os.popen('touch @CANARY@').read() }}"),
    ("builtins import", "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch @CANARY@') }}"),
    ("no spaces (IFS)", "{{lookup('pipe','touch${IFS}@CANARY@')}}"),
    ("redirect", "{{ lookup('pipe', 'printf x > @CANARY@') }}"),
    ("vars lookup, then pipe", "{{ lookup('vars', 'depmirror_dependency') }}{{ lookup('pipe','touch @CANARY@') }}"),
    ("relative canary (cwd)", "{{ lookup('pipe', 'touch @CANARY_NAME@') }}"),
    ("command substitution", "$(touch @CANARY@)"),
    ("backticks", "`touch @CANARY@`"),
    ("parameter expansion", "${x:-$(touch @CANARY@)}"),
    ("semicolon", "x; touch @CANARY@"),
    ("pipe", "x | touch @CANARY@"),
    ("single-quote breakout", "x'; touch @CANARY@; echo '"),
    ("double-quote breakout", 'x"; touch @CANARY@; echo "'),
    ("newlines", "x\ntouch @CANARY@\n"),
    ("carriage returns", "x\r\ntouch @CANARY@\r\n{{ lookup('pipe','touch @CANARY@') }}"),
    ("unicode", "ünïcødé ☃ 中文 \u202eevil\u202c \u200b {{ lookup('pipe','touch @CANARY@') }} 🚀"),
    ("very long", "A" * 4000 + "{{ lookup('pipe','touch @CANARY@') }}"),
)

PAYLOADS: tuple[Payload, ...] = tuple(
    Payload(index=index, name=name, template=template) for index, (name, template) in enumerate(_TEMPLATES)
)
# A payload without spaces: Alertmanager's --web.external-url takes it as a URL path.
URL_SAFE = next(p for p in PAYLOADS if p.name == "no spaces (IFS)")
# Text that a YAML reader would take for another type (hex and plain ints, booleans, null, a timestamp):
# it must reach a playbook as the same text, not as 31, True, None or a datetime.
LOOKALIKES: tuple[str, ...] = ("0x1F", "null", "true", "2026-01-01T00:00:00Z", "0o17", "1_000", "~", "yes")


class Canaries:
    """Where one test's canaries go: `directory` (which must exist, so `touch` can succeed) and a random
    token that keeps this test's file names apart from any other run's."""

    def __init__(self, directory: Path, token: str | None = None) -> None:
        self.directory = directory
        self.token = token or secrets.token_hex(3)

    def name(self, field: str, index: int) -> str:
        return f"{CANARY_PREFIX}.{self.token}.{field}.{index:02d}"

    def path(self, field: str, index: int) -> Path:
        return self.directory / self.name(field, index)

    def found(self, *, deep: tuple[Path, ...], shallow: tuple[Path, ...] = ()) -> list[Path]:
        """Canary files of this test under `deep` (recursively) and directly in `shallow` (e.g. /tmp)."""
        pattern = f"{CANARY_PREFIX}.{self.token}.*"
        hits: set[Path] = set()
        for root in deep:
            hits.update(root.rglob(pattern))
        for root in shallow:
            hits.update(root.glob(pattern))
        return sorted(hits)


def fits_fingerprint(text: str) -> bool:
    return 0 < len(text) <= MAX_FINGERPRINT and text.isprintable()
