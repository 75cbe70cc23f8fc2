"""CEL errors for people: where the expression went wrong, what CEL expected, a hint that fits.

The runtime's parser speaks ANTLR ("token recognition error at: '= '", "mismatched input
'and' expecting <EOF>"); the person who wrote ``status = 'high'`` wants the place, the
problem in words, and the likely fix ("compare with '=='"). Evaluation errors get the same
treatment ("no key 'y' in the map": test with ``has(x.y)``). Nothing here speaks of template
braces, except to say that CEL has none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from workflows.cel_text import INFIX

_POSITIONED = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")
_STRING = re.compile(
    r"""[rR]?('''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")"""
)
_EXPECTING_A_VALUE = "IDENTIFIER"  # ANTLR lists every token that starts a value
# cel-expr-python stops an evaluation after this many comprehension steps (all loops of the
# expression together; not configurable there). Deterministic: it depends on sizes only.
MAX_ITERATIONS = 10_000


def compile_message(expression: str, raw: str) -> str:
    """The first error the parser reports, with its place, in words, and hints."""
    try:
        expression.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, which JSON text can carry
        return "invalid CEL expression: it holds characters that are not valid Unicode"
    match = _POSITIONED.search(raw)
    if match is None:
        text = raw.strip().splitlines()[0] if raw.strip() else "cannot be parsed"
        return f"invalid CEL expression: {_strip_status(text)}" + _hints(expression)
    line, column, what = int(match[1]), int(match[2]), _in_words(match[3])
    if line > expression.count("\n") + 1:  # the parser's "no position" (4294967295:0)
        return f"invalid CEL expression: {what}" + _hints(expression)
    source = expression.splitlines()[line - 1] if expression.strip() else ""
    caret = " " * max(column - 1, 0) + "^"
    return f"invalid CEL expression at {line}:{column}: {what}\n  {source}\n  {caret}" + _hints(
        expression
    )


def _in_words(message: str) -> str:
    message = message.removeprefix("Syntax error: ").strip()
    if m := re.fullmatch(r"token recognition error at: '(.*)'", message, re.S):
        return f"unexpected character {m[1][:1]!r}"
    if m := re.fullmatch(r"(?:mismatched|extraneous) input '(.*)' expecting (.*)", message, re.S):
        return f"unexpected {_token(m[1])}, expected {_expected(m[2])}"
    if m := re.fullmatch(r"missing '?(.*?)'? at '(.*)'", message, re.S):
        at = "at the end" if m[2] == "<EOF>" else f"before '{m[2]}'"
        return f"missing '{m[1]}' {at}"
    if m := re.fullmatch(r"no viable alternative at input '(.*)'", message, re.S):
        return f"unexpected {_token(m[1][-1:] or m[1])}"
    if m := re.fullmatch(r"reserved identifier: (\w+)", message):
        return f"'{m[1]}' is a reserved word in CEL"
    return message


def _token(text: str) -> str:
    return "end of the expression" if text == "<EOF>" else f"'{text}'"


def _expected(expected: str) -> str:
    if _EXPECTING_A_VALUE in expected:
        return "a value (a name, a number, 'text', a list, a map or a parenthesis)"
    return "the end of the expression" if expected == "<EOF>" else expected


def _strip_status(text: str) -> str:
    return re.sub(r"^[A-Z_]+: ", "", text).removesuffix(" [INVALID_ARGUMENT]")


def _hints(expression: str) -> str:
    hints = list(_hint_list(expression))
    return "".join(f"\nhint: {hint}" for hint in hints)


def _hint_list(expression: str) -> Iterable[str]:
    bare = _STRING.sub("''", expression)  # what the hints read: no text inside quotes
    if re.search(r"(?<![=!<>])=(?!=)", bare) or "===" in bare:
        yield "compare with '==' ('=' alone is not an operator in CEL)"
    words = set(re.findall(r"\b(and|or|not)\b", bare))
    if words:
        spelled = {"and": "'&&' for 'and'", "or": "'||' for 'or'", "not": "'!' for 'not'"}
        yield "write " + ", ".join(spelled[w] for w in sorted(words)) + " (CEL has no such words)"
    if re.search(r"\{\s*[A-Za-z_][\w.]*\s*\}", bare):
        yield (
            "write a variable by its name alone (order.total), without braces: in CEL, braces "
            "make a map ({'key': value})"
        )
    if any(q in expression for q in "\u2018\u2019\u201c\u201d"):
        yield "write text between straight quotes: 'high' or \"high\""
    elif bare.count("'") % 2 or bare.count('"') % 2:
        yield "text needs a closing quote: 'high'"
    if re.search(r"\bif\b.*\bthen\b", bare):
        yield "for a choice, write condition ? value_if_true : value_if_false"


def evaluation_message(expression: str, raw: str) -> str:
    """An error the runtime gave while evaluating, in words, with a hint where one fits."""
    text = _strip_status(raw.strip())
    if m := re.search(r'Key not found in map : "?([^"]*)"?', text):
        key = m[1]
        held = re.search(rf"([A-Za-z_][\w.]*)\.{re.escape(key)}\b", expression)
        owner = held[1] if held else "m"
        return (
            f"expression {expression!r} failed: no key '{key}' in the map\n"
            f"hint: test with has({owner}.{key}) (or '{key}' in {owner}) before reading it"
        )
    if m := re.search(r"No matching overloads? found : (.+?)\((.*)\)", text):
        return f"expression {expression!r} failed: " + _no_overload(m[1], m[2])
    if "Iteration budget exceeded" in text:
        return (
            f"expression {expression!r} failed: its comprehensions iterate more than "
            f"{MAX_ITERATIONS:,} times in all (the CEL runtime's limit)\n"
            "hint: reduce the list in an earlier step, or split the work over several steps"
        )
    if "divide by zero" in text or "modulus by zero" in text:
        return f"expression {expression!r} failed: division by zero"
    return f"expression {expression!r} failed: {text}"


# How an error names a function: the operator a user wrote, not its internal name.
_OPERATORS = {**INFIX, "-_": "unary -", "!_": "!", "_[_]": "[]"}


def _no_overload(function: str, arguments: str) -> str:
    types = [
        t.strip().replace("int64", "int").replace("uint64", "uint") for t in arguments.split(",")
    ]
    name = _OPERATORS.get(function, function)
    message = f"{name!r} does not apply to {' and '.join(types) or 'no arguments'}"
    numbers = {"int", "uint", "double"}
    if len(set(types) & numbers) > 1:
        message += (
            "\nhint: CEL does not mix number types in arithmetic: convert with double() or int()"
        )
    elif "string" in types and set(types) & numbers:
        message += "\nhint: convert the number with string(), or the text with int() or double()"
    return message


def unknown_names(expression: str, names: list[str]) -> str:
    """A name the expression reads that the run does not hold (at save time or run time)."""
    listed = ", ".join(f"'{n}'" for n in names)
    verb = "is" if len(names) == 1 else "are"
    message = (
        f"expression {expression!r} reads {listed}, which {verb} not an input or an earlier "
        "step's output"
    )
    bare = _STRING.sub("''", expression)
    quoted = [n for n in names if re.search(rf"(?:==|!=)\s*{re.escape(n)}\b", bare)]
    if quoted:
        message += f"\nhint: to compare with the text {quoted[0]}, quote it: '{quoted[0]}'"
    return message
