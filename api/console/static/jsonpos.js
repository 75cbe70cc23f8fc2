// A JSON parser that remembers where every value is, so an error's JSON path
// (`$.steps[2].branches[0].when`) can be shown at its line in the editor, and a syntax error
// at its line and column. JSON.parse gives neither.

export class JsonSyntaxError extends Error {
  constructor(message, offset, line, column) {
    super(message);
    this.offset = offset;
    this.line = line;
    this.column = column;
  }
}

/** 1-based line and column of a character offset. */
export function lineColumn(text, offset) {
  let line = 1;
  let lastBreak = -1;
  for (let i = 0; i < offset && i < text.length; i += 1) {
    if (text.charCodeAt(i) === 10) {
      line += 1;
      lastBreak = i;
    }
  }
  return { line, column: offset - lastBreak };
}

const WS = new Set([" ", "\t", "\n", "\r"]);
const ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

/**
 * Parse `text`. Returns the root node: {kind, value, start, end, keyStart?, children?}, where
 * children is a Map (objects: key -> node) or an Array (arrays). Throws JsonSyntaxError.
 */
export function parseWithPositions(text) {
  let i = 0;

  const fail = (message, at = i) => {
    const { line, column } = lineColumn(text, at);
    throw new JsonSyntaxError(`${message} (line ${line}, column ${column})`, at, line, column);
  };
  const skip = () => {
    while (i < text.length && WS.has(text[i])) i += 1;
  };
  const describe = () => (i >= text.length ? "the end of the text" : `'${text[i]}'`);

  function string() {
    const start = i;
    i += 1; // opening quote
    let out = "";
    while (i < text.length) {
      const c = text[i];
      if (c === '"') {
        i += 1;
        return { start, value: out };
      }
      if (c === "\\") {
        const e = text[i + 1];
        if (e === "u") {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("Bad \\u escape in a string", i);
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else if (Object.hasOwn(ESCAPES, e)) {
          out += ESCAPES[e];
          i += 2;
        } else {
          fail("Bad escape in a string", i);
        }
      } else if (c === "\n" || c.charCodeAt(0) < 0x20) {
        fail("A string must end on its own line (missing closing quote?)", i);
      } else {
        out += c;
        i += 1;
      }
    }
    return fail("Unterminated string", start);
  }

  function value() {
    skip();
    const start = i;
    const c = text[i];
    if (c === "{") return object();
    if (c === "[") return array();
    if (c === '"') {
      const str = string();
      return { kind: "string", value: str.value, start, end: i };
    }
    const literal = /^(?:true|false|null)/.exec(text.slice(i, i + 5));
    if (literal) {
      i += literal[0].length;
      const word = literal[0];
      return { kind: "literal", value: word === "null" ? null : word === "true", start, end: i };
    }
    const number = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (number) {
      i += number[0].length;
      return { kind: "number", value: Number(number[0]), start, end: i };
    }
    return fail(`Expected a value, found ${describe()}`);
  }

  function object() {
    const start = i;
    i += 1;
    const children = new Map();
    const out = {};
    skip();
    if (text[i] === "}") {
      i += 1;
      return { kind: "object", value: out, start, end: i, children };
    }
    for (;;) {
      skip();
      if (text[i] !== '"') fail(`Expected a property name in double quotes, found ${describe()}`);
      const key = string();
      skip();
      if (text[i] !== ":") fail(`Expected ':' after the property name, found ${describe()}`);
      i += 1;
      const node = value();
      node.keyStart = key.start;
      children.set(key.value, node);
      // defineProperty: a key named "__proto__" stays a plain key, as in JSON.parse.
      Object.defineProperty(out, key.value, {
        value: node.value, enumerable: true, writable: true, configurable: true,
      });
      skip();
      if (text[i] === ",") {
        i += 1;
        skip();
        if (text[i] === "}") fail("Trailing comma before '}'");
        continue;
      }
      if (text[i] === "}") {
        i += 1;
        return { kind: "object", value: out, start, end: i, children };
      }
      fail(`Expected ',' or '}' after a property, found ${describe()}`);
    }
  }

  function array() {
    const start = i;
    i += 1;
    const children = [];
    skip();
    if (text[i] === "]") {
      i += 1;
      return { kind: "array", value: [], start, end: i, children };
    }
    for (;;) {
      children.push(value());
      skip();
      if (text[i] === ",") {
        i += 1;
        skip();
        if (text[i] === "]") fail("Trailing comma before ']'");
        continue;
      }
      if (text[i] === "]") {
        i += 1;
        return { kind: "array", value: children.map((n) => n.value), start, end: i, children };
      }
      fail(`Expected ',' or ']' after an item, found ${describe()}`);
    }
  }

  const root = value();
  skip();
  if (i < text.length) fail(`Unexpected ${describe()} after the document`);
  return root;
}

/**
 * The node a JSON path names, or its deepest existing ancestor (a missing field's error then
 * points at the object that lacks it). Keys are matched against the object's real keys, so
 * `$.inputs.properties.a.b` finds a property literally named "a.b" too.
 */
export function locate(root, path) {
  let node = root;
  let rest = String(path || "$").replace(/^\$/, "");
  let exact = true;
  while (rest && node) {
    let next = null;
    if (rest.startsWith("[")) {
      const m = /^\[(\d+)\]/.exec(rest);
      if (m && Array.isArray(node.children) && node.children[Number(m[1])]) {
        next = node.children[Number(m[1])];
        rest = rest.slice(m[0].length);
      }
    } else if (rest.startsWith(".") && node.children instanceof Map) {
      const tail = rest.slice(1);
      // Longest key first: a key containing "." or "[" must win over its own prefix.
      const keys = [...node.children.keys()].sort((a, b) => b.length - a.length);
      for (const key of keys) {
        const after = tail.slice(key.length);
        if (tail.startsWith(key) && (after === "" || after[0] === "." || after[0] === "[")) {
          next = node.children.get(key);
          rest = after;
          break;
        }
      }
    }
    if (!next) {
      exact = false;
      break;
    }
    node = next;
  }
  return { node, exact };
}

/** The 1-based line a JSON path points at in `text` (the property's key line when it has one). */
export function lineOfPath(text, root, path) {
  const { node } = locate(root, path);
  if (!node) return 1;
  return lineColumn(text, node.keyStart ?? node.start).line;
}
