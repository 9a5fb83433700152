"""JMESPath expressions and mappings, as the manifest's composition fields use them (API.md,
"Composition"): compiled and checked at deploy, evaluated at run time.

A tenant writes these expressions, so both halves are bounded. At deploy, ``compile_expression``
refuses an expression that is too long, nested too deeply or calls a function JMESPath does not
have, as ``InvalidManifest`` naming the field. At run time, ``Expression.search`` counts the steps
it takes and the size of what it builds, and every way an evaluation can go wrong — a type error
in a function call, too many steps, a result too large — is one ``ExpressionError`` with a message
fit to record. Nothing else is raised.

Why sizes are checked: an expression like ``[@, @] | [@, @] | …`` builds, in a few steps, a value
that shares one part many times over; written out as JSON it would be exponentially large. Such
sharing only comes from multi-select lists and hashes and from literals, so a result built with
one of them is measured (each shared part once) and then copied into a plain JSON value of its own;
any other result is a part of the value searched and is returned as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jmespath
import orjson
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions
from jmespath.parser import ParsedResult
from jmespath.visitor import Options, TreeInterpreter

from gateway.errors import InvalidManifest

MAX_EXPRESSION_LENGTH = 1024  # characters
MAX_EXPRESSION_DEPTH = 64  # nodes of the parsed expression, root to leaf
MAX_MAPPING_DEPTH = 8  # objects within objects
MAX_MAPPING_FIELDS = 64  # fields of one mapping, at every depth together
MAX_FIELD_NAME_LENGTH = 256
MAX_STEPS = 100_000  # nodes one evaluation may visit
MAX_RESULT_BYTES = 8 * 1024 * 1024  # about, as JSON


class ExpressionError(Exception):
    """An expression that failed at run time. Never an API response by itself: whoever evaluates
    it records ``str(error)``, which names the expression."""


class _Exhausted(Exception):
    """Raised inside an evaluation that went over one of its bounds (becomes ExpressionError)."""


def truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, and the empty string, list and object are false; anything
    else (0 included) is true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


@dataclass(frozen=True)
class Expression:
    """A compiled JMESPath expression (``compile_expression``)."""

    text: str
    _parsed: ParsedResult = field(repr=False, compare=False)

    def search(
        self, value: Any, *, max_steps: int = MAX_STEPS, max_bytes: int = MAX_RESULT_BYTES
    ) -> Any:
        """The expression's result over ``value`` (a JSON value), or ExpressionError."""
        evaluation = _Evaluation(max_steps, max_bytes)
        try:
            result = evaluation.visit(self._parsed.parsed, value)
            return evaluation.finished(result)
        except _Exhausted as exc:
            raise ExpressionError(f"expression {self.text!r}: {exc}") from None
        except jmespath_errors.JMESPathError as exc:
            raise ExpressionError(f"expression {self.text!r}: {exc}") from None
        except RecursionError:
            raise ExpressionError(f"expression {self.text!r}: nested too deeply") from None
        except Exception as exc:  # a tenant's expression must never fail its caller otherwise
            raise ExpressionError(
                f"expression {self.text!r}: {type(exc).__name__}: {exc}"
            ) from None

    def matches(self, value: Any) -> bool:
        """Whether the result over ``value`` is true by JMESPath's rules (``truthy``)."""
        return truthy(self.search(value))


@dataclass(frozen=True)
class Mapping:
    """How to build a value from data (``compile_mapping``): the default (neither expression nor
    fields), one expression, or an object built field by field from mappings of its own."""

    expression: Expression | None = None
    fields: tuple[tuple[str, Mapping], ...] | None = None

    @property
    def is_default(self) -> bool:
        return self.expression is None and self.fields is None

    def apply(self, data: Any, default: Any, *, max_bytes: int = MAX_RESULT_BYTES) -> Any:
        """The value this mapping builds from ``data``, with ``default`` where it names none.
        Raises ExpressionError when one of its expressions fails (each result is bounded by
        ``max_bytes``; an object has at most MAX_MAPPING_FIELDS of them)."""
        if self.expression is not None:
            return self.expression.search(data, max_bytes=max_bytes)
        if self.fields is None:
            return default
        return {
            name: mapping.apply(data, default, max_bytes=max_bytes) for name, mapping in self.fields
        }


def compile_expression(text: Any, field: str) -> Expression:
    """``text`` compiled, or InvalidManifest naming ``field``."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidManifest(
            f"{field}: a JMESPath expression must be a non-empty string", field=field
        )
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise InvalidManifest(
            f"{field}: the expression is {len(text)} characters long; at most "
            f"{MAX_EXPRESSION_LENGTH} are allowed",
            field=field,
        )
    try:
        parsed = jmespath.compile(text)
    except jmespath_errors.JMESPathError as exc:
        reason = " ".join(str(exc).split()).removeprefix("Invalid jmespath expression: ")
        raise InvalidManifest(
            f"{field}: not a valid JMESPath expression: {reason}", field=field
        ) from None
    except RecursionError:
        raise InvalidManifest(
            f"{field}: the expression is nested too deeply", field=field
        ) from None
    _check_tree(parsed.parsed, field)
    return Expression(text, parsed)


def compile_mapping(value: Any, field: str) -> Mapping:
    """A mapping as the manifest gives it (null, an expression, or an object of mappings),
    compiled; InvalidManifest names the field at fault (``chains[0].input.customer.id``)."""
    counted = [0]
    return _compile_mapping(value, field, 0, counted)


def _compile_mapping(value: Any, field: str, depth: int, counted: list[int]) -> Mapping:
    if value is None:
        return Mapping()
    if isinstance(value, str):
        return Mapping(expression=compile_expression(value, field))
    if not isinstance(value, dict):
        raise InvalidManifest(
            f"{field}: a mapping is null, a JMESPath expression (a string) or an object of "
            "mappings",
            field=field,
        )
    if depth >= MAX_MAPPING_DEPTH:
        raise InvalidManifest(
            f"{field}: mappings nest at most {MAX_MAPPING_DEPTH} objects deep", field=field
        )
    fields = []
    for name, inner in value.items():
        counted[0] += 1
        if counted[0] > MAX_MAPPING_FIELDS:
            raise InvalidManifest(
                f"{field}: a mapping has at most {MAX_MAPPING_FIELDS} fields in all", field=field
            )
        if len(name) > MAX_FIELD_NAME_LENGTH:
            raise InvalidManifest(
                f"{field}: field names are at most {MAX_FIELD_NAME_LENGTH} characters", field=field
            )
        fields.append((name, _compile_mapping(inner, f"{field}.{name}", depth + 1, counted)))
    return Mapping(fields=tuple(fields))


def _check_tree(root: Any, field: str) -> None:
    """Refuse, at deploy, what would only fail at run time: depth, unknown functions, arity."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            raise InvalidManifest(
                f"{field}: the expression nests more than {MAX_EXPRESSION_DEPTH} levels deep",
                field=field,
            )
        if node["type"] == "function_expression":
            _check_call(node["value"], len(node["children"]), field)
        stack.extend((child, depth + 1) for child in node.get("children", ()))


def _check_call(name: str, given: int, field: str) -> None:
    spec = _Functions.FUNCTION_TABLE.get(name)
    if spec is None:
        known = ", ".join(sorted(_Functions.FUNCTION_TABLE))
        raise InvalidManifest(
            f"{field}: unknown JMESPath function {name}() (known: {known})", field=field
        )
    expected = spec["signature"]
    variadic = bool(expected) and expected[-1].get("variadic", False)
    if given < len(expected) if variadic else given != len(expected):
        wanted = f"at least {len(expected)}" if variadic else str(len(expected))
        raise InvalidManifest(
            f"{field}: {name}() takes {wanted} argument(s), {given} given", field=field
        )


class _Functions(jmespath_functions.Functions):
    """JMESPath's functions; once the evaluation may share parts (see the module's docstring),
    the size of every argument is measured first (which bounds what join() or to_string() make,
    and what contains() compares)."""

    def __init__(self, evaluation: _Evaluation) -> None:
        super().__init__()
        self._evaluation = evaluation

    def call_function(self, function_name: str, resolved_args: Any) -> Any:
        self._evaluation.measure(*resolved_args)
        return super().call_function(function_name, resolved_args)


class _Evaluation(TreeInterpreter):
    """One search: JMESPath's interpreter, counting its steps and watching what it builds."""

    def __init__(self, max_steps: int, max_bytes: int) -> None:
        super().__init__(Options(custom_functions=_Functions(self)))
        self.max_steps = max_steps
        self.max_bytes = max_bytes
        self.steps = 0
        self.shares = False  # a multi-select or a literal ran: the result may share parts

    def visit(self, node: Any, *args: Any, **kwargs: Any) -> Any:
        self.count(1)
        return super().visit(node, *args, **kwargs)

    def visit_literal(self, node: Any, value: Any) -> Any:
        if isinstance(node["value"], str | list | dict):
            self.shares = True
        return super().visit_literal(node, value)

    def visit_multi_select_list(self, node: Any, value: Any) -> list[Any] | None:
        self.shares = True
        return super().visit_multi_select_list(node, value)

    def visit_multi_select_dict(self, node: Any, value: Any) -> Any:
        self.shares = True
        return super().visit_multi_select_dict(node, value)

    def visit_flatten(self, node: Any, value: Any) -> Any:
        flat = super().visit_flatten(node, value)
        if self.shares and isinstance(flat, list):
            self.count(len(flat))
        return flat

    def visit_comparator(self, node: Any, value: Any) -> Any:
        """JMESPath's comparison, its operands measured first: equality compares a part shared
        many times once for each time it appears. Ordering compares numbers or strings only
        (anything else is null), as JMESPath's own interpreter does."""
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        self.measure(left, right)
        operator = node["value"]
        if operator not in ("eq", "ne") and not (_orderable(left) and _orderable(right)):
            return None
        return self.COMPARATOR_FUNC[operator](left, right)

    def measure(self, *values: Any) -> None:
        """Refuse values that would be too large written out, once parts may be shared (else
        every value is a part of the one searched). The walk counts as steps."""
        if not self.shares:
            return
        for value in values:
            if isinstance(value, list | dict):
                size, walked = _json_size(value, self.max_bytes)
                self.count(walked)
                self.limit_size(size, "a value")

    def count(self, steps: int) -> None:
        self.steps += steps
        if self.steps > self.max_steps:
            raise _Exhausted(f"took more than {self.max_steps} steps")

    def limit_size(self, size: int, what: str) -> None:
        if size > self.max_bytes:
            raise _Exhausted(f"{what} would be larger than {self.max_bytes} bytes")

    def finished(self, result: Any) -> Any:
        """The result, as a JSON value of its own when it may share parts."""
        if not self.shares or not isinstance(result, list | dict):
            return result
        self.limit_size(_json_size(result, self.max_bytes)[0], "the result")
        try:
            return orjson.loads(orjson.dumps(result))
        except orjson.JSONEncodeError as exc:
            raise _Exhausted(f"the result is not JSON ({exc})") from None


def _json_size(value: Any, limit: int) -> tuple[int, int]:
    """About how many bytes ``value`` takes as JSON — a shared part counted every time it
    appears, but measured once — and how many values that looked at. Stops past ``limit``
    (answering a size above it)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(value, False)]
    walked = 0
    while stack:
        node, children_measured = stack.pop()
        if not isinstance(node, list | dict) or id(node) in sizes:
            continue
        children = list(node.values()) if isinstance(node, dict) else node
        if not children_measured:
            stack.append((node, True))
            stack.extend((child, False) for child in children if isinstance(child, list | dict))
            continue
        walked += 1 + len(children)
        total = 2 + len(children)
        if isinstance(node, dict):
            total += sum(len(key) + 3 for key in node)
        for child in children:
            total += sizes[id(child)] if isinstance(child, list | dict) else _leaf_size(child)
            if total > limit:
                return total, walked
        sizes[id(node)] = total
    size = sizes[id(value)] if isinstance(value, list | dict) else _leaf_size(value)
    return size, walked


def _orderable(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def _leaf_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    return 24
