"""The message classes of CEL's syntax tree (``cel.expr.ParsedExpr``), without generated code.

The CEL runtime hands a compiled expression over as a serialized ``ParsedExpr``
(``Expression.serialize()``) and takes one back (``Env.deserialize``): that is how
:mod:`workflows.cel_ast` reads an expression's variables and rewrites its comprehensions. The
classes come from cel-spec's ``cel/expr/syntax.proto`` (Apache-2.0), held here as its
serialized ``FileDescriptorProto`` (source comments and options dropped) and loaded into a
private descriptor pool: no generated ``_pb2`` module, so no tie to one protobuf release.
tests/test_cel_ast.py checks it against the vendored ``tests/conformance/cel-spec/proto``.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    message_factory,
    struct_pb2,
    timestamp_pb2,
)

SYNTAX_PROTO = "cel/expr/syntax.proto"
PARSED_EXPR_URL = "type.googleapis.com/cel.expr.ParsedExpr"

_DESCRIPTOR = base64.b64decode(
    "ChVjZWwvZXhwci9zeW50YXgucHJvdG8SCGNlbC5leHByGh5nb29nbGUvcHJvdG9idWYvZHVyYXRpb24ucHJvdG8aHGdv"
    "b2dsZS9wcm90b2J1Zi9zdHJ1Y3QucHJvdG8aH2dvb2dsZS9wcm90b2J1Zi90aW1lc3RhbXAucHJvdG8iZwoKUGFyc2Vk"
    "RXhwchIiCgRleHByGAIgASgLMg4uY2VsLmV4cHIuRXhwclIEZXhwchI1Cgtzb3VyY2VfaW5mbxgDIAEoCzIULmNlbC5l"
    "eHByLlNvdXJjZUluZm9SCnNvdXJjZUluZm8imgsKBEV4cHISDgoCaWQYAiABKANSAmlkEjMKCmNvbnN0X2V4cHIYAyAB"
    "KAsyEi5jZWwuZXhwci5Db25zdGFudEgAUgljb25zdEV4cHISNQoKaWRlbnRfZXhwchgEIAEoCzIULmNlbC5leHByLkV4"
    "cHIuSWRlbnRIAFIJaWRlbnRFeHByEjgKC3NlbGVjdF9leHByGAUgASgLMhUuY2VsLmV4cHIuRXhwci5TZWxlY3RIAFIK"
    "c2VsZWN0RXhwchIyCgljYWxsX2V4cHIYBiABKAsyEy5jZWwuZXhwci5FeHByLkNhbGxIAFIIY2FsbEV4cHISOAoJbGlz"
    "dF9leHByGAcgASgLMhkuY2VsLmV4cHIuRXhwci5DcmVhdGVMaXN0SABSCGxpc3RFeHByEj4KC3N0cnVjdF9leHByGAgg"
    "ASgLMhsuY2VsLmV4cHIuRXhwci5DcmVhdGVTdHJ1Y3RIAFIKc3RydWN0RXhwchJNChJjb21wcmVoZW5zaW9uX2V4cHIY"
    "CSABKAsyHC5jZWwuZXhwci5FeHByLkNvbXByZWhlbnNpb25IAFIRY29tcHJlaGVuc2lvbkV4cHIaGwoFSWRlbnQSEgoE"
    "bmFtZRgBIAEoCVIEbmFtZRplCgZTZWxlY3QSKAoHb3BlcmFuZBgBIAEoCzIOLmNlbC5leHByLkV4cHJSB29wZXJhbmQS"
    "FAoFZmllbGQYAiABKAlSBWZpZWxkEhsKCXRlc3Rfb25seRgDIAEoCFIIdGVzdE9ubHkabgoEQ2FsbBImCgZ0YXJnZXQY"
    "ASABKAsyDi5jZWwuZXhwci5FeHByUgZ0YXJnZXQSGgoIZnVuY3Rpb24YAiABKAlSCGZ1bmN0aW9uEiIKBGFyZ3MYAyAD"
    "KAsyDi5jZWwuZXhwci5FeHByUgRhcmdzGmMKCkNyZWF0ZUxpc3QSKgoIZWxlbWVudHMYASADKAsyDi5jZWwuZXhwci5F"
    "eHByUghlbGVtZW50cxIpChBvcHRpb25hbF9pbmRpY2VzGAIgAygFUg9vcHRpb25hbEluZGljZXMaqwIKDENyZWF0ZVN0"
    "cnVjdBIhCgxtZXNzYWdlX25hbWUYASABKAlSC21lc3NhZ2VOYW1lEjsKB2VudHJpZXMYAiADKAsyIS5jZWwuZXhwci5F"
    "eHByLkNyZWF0ZVN0cnVjdC5FbnRyeVIHZW50cmllcxq6AQoFRW50cnkSDgoCaWQYASABKANSAmlkEh0KCWZpZWxkX2tl"
    "eRgCIAEoCUgAUghmaWVsZEtleRIpCgdtYXBfa2V5GAMgASgLMg4uY2VsLmV4cHIuRXhwckgAUgZtYXBLZXkSJAoFdmFs"
    "dWUYBCABKAsyDi5jZWwuZXhwci5FeHByUgV2YWx1ZRIlCg5vcHRpb25hbF9lbnRyeRgFIAEoCFINb3B0aW9uYWxFbnRy"
    "eUIKCghrZXlfa2luZBrKAgoNQ29tcHJlaGVuc2lvbhIZCghpdGVyX3ZhchgBIAEoCVIHaXRlclZhchIbCglpdGVyX3Zh"
    "cjIYCCABKAlSCGl0ZXJWYXIyEi0KCml0ZXJfcmFuZ2UYAiABKAsyDi5jZWwuZXhwci5FeHByUglpdGVyUmFuZ2USGQoI"
    "YWNjdV92YXIYAyABKAlSB2FjY3VWYXISKwoJYWNjdV9pbml0GAQgASgLMg4uY2VsLmV4cHIuRXhwclIIYWNjdUluaXQS"
    "NQoObG9vcF9jb25kaXRpb24YBSABKAsyDi5jZWwuZXhwci5FeHByUg1sb29wQ29uZGl0aW9uEisKCWxvb3Bfc3RlcBgG"
    "IAEoCzIOLmNlbC5leHByLkV4cHJSCGxvb3BTdGVwEiYKBnJlc3VsdBgHIAEoCzIOLmNlbC5leHByLkV4cHJSBnJlc3Vs"
    "dEILCglleHByX2tpbmQiwQMKCENvbnN0YW50EjsKCm51bGxfdmFsdWUYASABKA4yGi5nb29nbGUucHJvdG9idWYuTnVs"
    "bFZhbHVlSABSCW51bGxWYWx1ZRIfCgpib29sX3ZhbHVlGAIgASgISABSCWJvb2xWYWx1ZRIhCgtpbnQ2NF92YWx1ZRgD"
    "IAEoA0gAUgppbnQ2NFZhbHVlEiMKDHVpbnQ2NF92YWx1ZRgEIAEoBEgAUgt1aW50NjRWYWx1ZRIjCgxkb3VibGVfdmFs"
    "dWUYBSABKAFIAFILZG91YmxlVmFsdWUSIwoMc3RyaW5nX3ZhbHVlGAYgASgJSABSC3N0cmluZ1ZhbHVlEiEKC2J5dGVz"
    "X3ZhbHVlGAcgASgMSABSCmJ5dGVzVmFsdWUSRgoOZHVyYXRpb25fdmFsdWUYCCABKAsyGS5nb29nbGUucHJvdG9idWYu"
    "RHVyYXRpb25CAhgBSABSDWR1cmF0aW9uVmFsdWUSSQoPdGltZXN0YW1wX3ZhbHVlGAkgASgLMhouZ29vZ2xlLnByb3Rv"
    "YnVmLlRpbWVzdGFtcEICGAFIAFIOdGltZXN0YW1wVmFsdWVCDwoNY29uc3RhbnRfa2luZCKsBgoKU291cmNlSW5mbxIl"
    "Cg5zeW50YXhfdmVyc2lvbhgBIAEoCVINc3ludGF4VmVyc2lvbhIaCghsb2NhdGlvbhgCIAEoCVIIbG9jYXRpb24SIQoM"
    "bGluZV9vZmZzZXRzGAMgAygFUgtsaW5lT2Zmc2V0cxJBCglwb3NpdGlvbnMYBCADKAsyIy5jZWwuZXhwci5Tb3VyY2VJ"
    "bmZvLlBvc2l0aW9uc0VudHJ5Uglwb3NpdGlvbnMSRQoLbWFjcm9fY2FsbHMYBSADKAsyJC5jZWwuZXhwci5Tb3VyY2VJ"
    "bmZvLk1hY3JvQ2FsbHNFbnRyeVIKbWFjcm9DYWxscxI+CgpleHRlbnNpb25zGAYgAygLMh4uY2VsLmV4cHIuU291cmNl"
    "SW5mby5FeHRlbnNpb25SCmV4dGVuc2lvbnMaPAoOUG9zaXRpb25zRW50cnkSEAoDa2V5GAEgASgDUgNrZXkSFAoFdmFs"
    "dWUYAiABKAVSBXZhbHVlOgI4ARpNCg9NYWNyb0NhbGxzRW50cnkSEAoDa2V5GAEgASgDUgNrZXkSJAoFdmFsdWUYAiAB"
    "KAsyDi5jZWwuZXhwci5FeHByUgV2YWx1ZToCOAEa4AIKCUV4dGVuc2lvbhIOCgJpZBgBIAEoCVICaWQSWQoTYWZmZWN0"
    "ZWRfY29tcG9uZW50cxgCIAMoDjIoLmNlbC5leHByLlNvdXJjZUluZm8uRXh0ZW5zaW9uLkNvbXBvbmVudFISYWZmZWN0"
    "ZWRDb21wb25lbnRzEkAKB3ZlcnNpb24YAyABKAsyJi5jZWwuZXhwci5Tb3VyY2VJbmZvLkV4dGVuc2lvbi5WZXJzaW9u"
    "Ugd2ZXJzaW9uGjUKB1ZlcnNpb24SFAoFbWFqb3IYASABKANSBW1ham9yEhQKBW1pbm9yGAIgASgDUgVtaW5vciJvCglD"
    "b21wb25lbnQSGQoVQ09NUE9ORU5UX1VOU1BFQ0lGSUVEEAASFAoQQ09NUE9ORU5UX1BBUlNFUhABEhoKFkNPTVBPTkVO"
    "VF9UWVBFX0NIRUNLRVIQAhIVChFDT01QT05FTlRfUlVOVElNRRADQgBiBnByb3RvMw=="
)


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for module in (duration_pb2, struct_pb2, timestamp_pb2):  # what syntax.proto imports
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(_DESCRIPTOR)
    return pool


@cache
def message_class(name: str) -> Any:
    """The class of ``cel.expr.<name>`` (``ParsedExpr``, ``Expr``, ``SourceInfo``...)."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(f"cel.expr.{name}"))


def descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    """The descriptor held here (for the test that compares it with the vendored file)."""
    return descriptor_pb2.FileDescriptorProto.FromString(_DESCRIPTOR)
