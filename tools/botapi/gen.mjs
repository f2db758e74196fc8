// Generates tghost's description of the Telegram Bot API from npm's
// @grammyjs/types (read with the TypeScript compiler API), and the list of
// grammY's ctx shortcuts from npm's grammy. Run by hand when Telegram ships
// a new Bot API version (never by the build or CI):
//
//   cd tools/botapi && npm ci && node gen.mjs
//
// then bump "botApiVersion" in package.json to the version the new
// @grammyjs/types release notes name, rebuild, run the tests, and commit
// the outputs:
//
//   lua/apispec.lua              every method (parameters in order: type,
//                                required, one-line doc; result type) and
//                                every object with its fields (lazily
//                                loaded: --check and tooling)
//   src/net/botapi_methods.c     the methods, their parameter order and
//                                required flags, grammY's positional
//                                arguments where they differ from the
//                                required ones, the Bot API version: what
//                                bot.api, the sandbox and --version read
//   types/botapi.lua             LuaCATS classes for every object,
//                                tghost.Api with both call shapes of every
//                                method, the ctx shortcuts
//   tests/lua/fixtures/grammy_context.lua
//                                the method names of grammY's Context
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const require = createRequire(import.meta.url);
const pkg = JSON.parse(fs.readFileSync(path.join(here, "package.json"), "utf8"));
const typesPkg = JSON.parse(fs.readFileSync(
  path.join(here, "node_modules/@grammyjs/types/package.json"), "utf8"));
const grammyPkg = JSON.parse(fs.readFileSync(
  path.join(here, "node_modules/grammy/package.json"), "utf8"));
const VERSION = pkg.botApiVersion;
const SOURCE = `@grammyjs/types ${typesPkg.version}`;

// --- reading the declarations -------------------------------------------

// A file that instantiates ApiMethods with tghost's InputFile, so that
// F-typed parameters read as InputFile.
const shim = path.join(here, "node_modules/.tghost-shim.ts");
fs.writeFileSync(shim, `
import type { ApiMethods } from "@grammyjs/types";
export interface InputFile { readonly __tghost_input_file: true }
export type TghostMethods = ApiMethods<InputFile>;
export * from "@grammyjs/types";
`);
const program = ts.createProgram([shim], {
  strict: true, noEmit: true, moduleResolution: ts.ModuleResolutionKind.Node10,
  target: ts.ScriptTarget.ES2020, baseUrl: here,
});
const checker = program.getTypeChecker();
const shimFile = program.getSourceFile(shim);
const moduleSym = checker.getSymbolAtLocation(shimFile);
const exported = new Map();
for (const s of checker.getExportsOfModule(moduleSym)) {
  const sym = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
  exported.set(s.name, sym);
}

function oneLine(sym) {
  if (!sym) return "";
  let doc = ts.displayPartsToString(sym.getDocumentationComment(checker))
    .replace(/\s+/g, " ").trim();
  // The first sentence, and no more than fits a line.
  const m = doc.match(/^(.+?[.!?])(\s|$)/);
  if (m) doc = m[1];
  if (doc.length > 100) doc = doc.slice(0, 97).replace(/\s\S*$/, "") + "...";
  return doc;
}

function fullDoc(sym) {
  if (!sym) return "";
  return ts.displayPartsToString(sym.getDocumentationComment(checker))
    .replace(/\r/g, "").trim();
}

// Names that are object types of the API (classes in the output).
const SKIP = new Set(["ApiMethods", "Opts", "TghostMethods", "ApiResponse",
  "ApiSuccess", "ApiError", "ResponseParameters", "LanguageCode",
  "InputFile"]);

// The exported name a type stands for, or null.
function nameOf(type) {
  const sym = type.aliasSymbol || type.getSymbol();
  if (!sym) return null;
  if (exported.has(sym.name) && exported.get(sym.name) === sym) return sym.name;
  // Chat.PrivateChat, Message.TextMessage, ...: the namespace's type.
  const parent = sym.parent;
  if (parent && exported.has(parent.name)) return parent.name;
  if (exported.has(sym.name)) return sym.name;
  return null;
}

const LITERAL_UNION_MAX = 16;

// A type as a compact type string: integer, number, string, boolean,
// InputFile, a class name, X[], "a"|"b", A|B, table.
function typeString(type, field, depth = 0, noAlias = false) {
  if (depth > 8) return "any";
  if (type.isTypeParameter()) return "InputFile";
  const alias = type.aliasSymbol && type.aliasSymbol.name;
  if (alias === "LanguageCode") return "string";
  if (alias && exported.has(alias) && !SKIP.has(alias) && !noAlias) return alias;
  noAlias = false;
  if (type.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Never | ts.TypeFlags.Null)) return null;
  if (type.flags & (ts.TypeFlags.String)) return "string";
  if (type.flags & ts.TypeFlags.Number) return integerField(field) ? "integer" : "number";
  if (type.flags & (ts.TypeFlags.Boolean | ts.TypeFlags.BooleanLiteral)) return "boolean";
  if (type.flags & ts.TypeFlags.StringLiteral) return JSON.stringify(type.value);
  if (type.flags & ts.TypeFlags.NumberLiteral) return "integer";
  if (type.isUnion()) {
    const parts = [];
    const lits = type.types.filter(t => t.flags & ts.TypeFlags.StringLiteral);
    if (lits.length > LITERAL_UNION_MAX) parts.push("string");
    for (const t of type.types) {
      if (lits.length > LITERAL_UNION_MAX && (t.flags & ts.TypeFlags.StringLiteral)) continue;
      const s = typeString(t, field, depth + 1);
      if (s && !parts.includes(s)) parts.push(s);
    }
    if (parts.includes("boolean")) {
      // true | false came apart above
    }
    return parts.join("|") || null;
  }
  if (checker.isArrayType(type) || checker.isTupleType(type) ||
      (type.getSymbol() && type.getSymbol().name === "ReadonlyArray")) {
    const args = checker.getTypeArguments(type);
    const inner = args.length ? typeString(args[0], field, depth + 1) : "any";
    return (inner && inner.includes("|") ? `(${inner})` : inner || "any") + "[]";
  }
  if (type.isIntersection()) {
    for (const t of type.types) {
      const n = nameOf(t);
      if (n && !SKIP.has(n)) return n === "InputFile" ? "InputFile" : n;
    }
    return "table";
  }
  const n = nameOf(type);
  if (n === "InputFile") return "InputFile";
  if (n && !SKIP.has(n)) return n;
  if (type.flags & ts.TypeFlags.Object) return "table";
  if (type.flags & ts.TypeFlags.Any || type.flags & ts.TypeFlags.Unknown) return "any";
  return "any";
}

function classLike(type) {
  if (type.isUnion()) return type.types.every(t => classLike(t) || (t.flags & ts.TypeFlags.Undefined));
  return !!(type.flags & ts.TypeFlags.Object) || type.isIntersection();
}

// Telegram's "Integer" fields, as far as a name tells (TypeScript has one
// number type).
function integerField(name) {
  if (!name) return false;
  return /(^|_)(id|ids|date|count|size|width|height|duration|offset|length|limit|timeout|position|amount|period|number|level|value|index|score|year|month|day|seconds|time|months|stars|star_count|nanostar_amount|radius|heading|distance)$/.test(name)
    || /_id$|_date$|_count$|_size$|_period$/.test(name);
}

function propsOf(type) {
  const out = [];
  const seen = new Map();
  const members = type.isUnion() ? type.types : [type];
  for (const m of members) {
    if (m.flags & ts.TypeFlags.Undefined) continue;
    for (const p of checker.getPropertiesOfType(m)) {
      const decl = p.valueDeclaration || (p.declarations && p.declarations[0]);
      const ptype = decl ? checker.getTypeOfSymbolAtLocation(p, decl)
                         : checker.getTypeOfSymbol(p);
      const optional = !!(p.flags & ts.SymbolFlags.Optional);
      const entry = seen.get(p.name);
      if (entry) {
        entry.present++;
        if (optional) entry.required = false;
        const t = typeString(ptype, p.name);
        if (t) entry.type = entry.type ? mergeTypes(entry.type, t) : t;
        continue;
      }
      const e = { name: p.name, type: typeString(ptype, p.name),
                  required: !optional, doc: oneLine(p), full: fullDoc(p),
                  present: 1 };
      seen.set(p.name, e);
      out.push(e);
    }
  }
  const n = members.filter(m => !(m.flags & ts.TypeFlags.Undefined)).length;
  for (const e of out) {
    if (e.present < n) e.required = false;
    if (!e.type) e.type = "any";
  }
  return out;
}

function mergeTypes(a, b) {
  const parts = a.split("|");
  for (const x of b.split("|")) if (!parts.includes(x)) parts.push(x);
  // "private"|"group"|... merged across members stays a literal union.
  return parts.join("|");
}

// --- methods --------------------------------------------------------------

const methodsType = checker.getDeclaredTypeOfSymbol(exported.get("TghostMethods"));
const methods = [];
for (const prop of checker.getPropertiesOfType(methodsType)) {
  const decl = prop.valueDeclaration || prop.declarations[0];
  const ftype = checker.getTypeOfSymbolAtLocation(prop, decl);
  const sig = ftype.getCallSignatures()[0];
  let params = [];
  if (sig.parameters.length) {
    const p0 = sig.parameters[0];
    const ptype = checker.getNonNullableType(
      checker.getTypeOfSymbolAtLocation(p0, p0.valueDeclaration));
    params = propsOf(ptype);
  }
  const result = typeString(sig.getReturnType(), prop.name) || "any";
  methods.push({ name: prop.name, params, result, doc: oneLine(prop),
                 full: fullDoc(prop) });
}

// --- objects --------------------------------------------------------------

const objects = [];
const aliases = [];
for (const [name, sym] of [...exported].sort((a, b) => a[0] < b[0] ? -1 : 1)) {
  if (SKIP.has(name)) continue;
  if (!(sym.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias))) continue;
  const type = checker.getDeclaredTypeOfSymbol(sym);
  if (type.isUnion() && type.types.every(t => {
    const n = nameOf(t);
    return n && n !== name && exported.get(n) === t.getSymbol();
  })) {
    aliases.push({ name, members: type.types.map(nameOf), doc: fullDoc(sym) });
    continue;
  }
  if (type.isUnion() && !classLike(type)) {
    aliases.push({ name, literal: typeString(type, null, 0, true), doc: fullDoc(sym) });
    continue;
  }
  if (!classLike(type)) continue;
  objects.push({ name, fields: propsOf(type), doc: fullDoc(sym) });
}
const known = new Set([...objects.map(o => o.name), ...aliases.map(a => a.name)]);

// --- grammY's ctx methods --------------------------------------------------

const grammyContext = [];
{
  const file = path.join(here, "node_modules/grammy/out/context.d.ts");
  const sf = ts.createSourceFile(file, fs.readFileSync(file, "utf8"),
                                 ts.ScriptTarget.ES2020, true);
  ts.forEachChild(sf, node => {
    if (ts.isClassDeclaration(node) && node.name && node.name.text === "Context") {
      for (const m of node.members) {
        if (!ts.isMethodDeclaration(m) || !m.name) continue;
        const mods = ts.getCombinedModifierFlags(m);
        if (mods & (ts.ModifierFlags.Static | ts.ModifierFlags.Private)) continue;
        if (!grammyContext.includes(m.name.text)) grammyContext.push(m.name.text);
      }
    }
  });
}

// --- grammY's positional arguments (its Api class) ---------------------------

// grammY's Api picks each method's positional arguments by hand, and not
// always as the Bot API's required parameters: the edit methods take
// chat_id and message_id first (the Bot API marks them optional, for
// inline messages; grammY has *Inline variants for those), some take an
// optional parameter (setMyName(name), unpinChatMessage(chat_id,
// message_id?)). bot.api's positional shape is grammY's, so a grammY call
// reads the same; a method whose list differs from its required
// parameters carries grammY's list (an optional one ends in "?").
{
  const file = path.join(here, "node_modules/grammy/out/core/api.d.ts");
  const sf = ts.createSourceFile(file, fs.readFileSync(file, "utf8"),
                                 ts.ScriptTarget.ES2020, true);
  const grammyApi = new Map();
  ts.forEachChild(sf, node => {
    if (!ts.isClassDeclaration(node) || !node.name || node.name.text !== "Api") return;
    for (const m of node.members) {
      if (!ts.isMethodDeclaration(m) || !m.name) continue;
      // Deprecated aliases pass (...args) on to their successor.
      if (m.parameters.some(p => p.dotDotDotToken)) continue;
      const names = m.parameters.map(p => p.name.getText(sf))
        .filter(n => n !== "other" && n !== "signal")
        // editMessageText(chat_id, message_id, text_or_rich_message): a
        // string is the text (a rich message goes in the table shape).
        .map(n => n.replace(/_or_rich_message$/, ""));
      const optional = m.parameters.filter(p => p.questionToken).map(p => p.name.getText(sf));
      grammyApi.set(m.name.text, names.map(n => optional.includes(n) ? n + "?" : n));
    }
  });
  for (const m of methods) {
    const pos = grammyApi.get(m.name);
    if (!pos) continue;
    const unknown = pos.filter(n => !m.params.some(p => p.name === n.replace(/\?$/, "")));
    if (unknown.length) {
      console.warn(`grammY's Api.${m.name} takes ${unknown.join(", ")}, which the Bot API does not have: positional shape left as the required parameters`);
      continue;
    }
    const req = m.params.filter(p => p.required).map(p => p.name);
    if (pos.join(" ") !== req.join(" ")) m.positional = pos;
  }
}

// --- the ctx shortcuts (lua/shortcuts.lua) ----------------------------------

// Entries are one per line: S("name", "method", "target"[, "arg", "arg?"])
// and targets: T("name", "param", ...).
const shortcutsText = fs.readFileSync(path.join(root, "lua/shortcuts.lua"), "utf8");
const targets = new Map();
for (const m of shortcutsText.matchAll(/^T\(("[^)]*")\)/gm)) {
  const [name, ...fills] = JSON.parse(`[${m[1]}]`);
  targets.set(name, fills);
}
const shortcuts = [];
for (const m of shortcutsText.matchAll(/^S\(("[^)]*")\)(?:\s*--\s*(.*))?$/gm)) {
  const [name, method, target, ...args] = JSON.parse(`[${m[1]}]`);
  shortcuts.push({ name, method, target, args: args.length ? args : null,
                   note: m[2] || "" });
}

// --- writing -----------------------------------------------------------------

const HEADER = (c) => `${c} Generated by tools/botapi/gen.mjs from ${SOURCE} (Telegram Bot API ${VERSION}).
${c} Do not edit: change the generator and run it again (tools/botapi/README.md).
`;

function luaString(s) {
  return JSON.stringify(s).replace(/\\u([0-9a-f]{4})/g, (_, h) => `\\u{${h}}`);
}

function paramsString(list) {
  return list.map(p => `${p.name}${p.required ? "!" : ""}:${p.type}`).join(" ");
}

function writeApispec() {
  let out = HEADER("--");
  out += `-- methods[name] = { result type, doc, "name[!]:type ..." } (! = required;
-- parameters in the order the spec lists them); objects[name] = "field[!]:type ...";
-- aliases[name] = "A|B|..." (a union of objects or of string literals).
-- Types: integer, number, string, boolean, InputFile, table, any, an object's
-- name, X[] (a list), "lit" (a string literal), A|B.
return {
  version = ${luaString(VERSION)},
  source = ${luaString(SOURCE)},
  methods = {
`;
  for (const m of methods) {
    out += `    ${m.name} = { ${luaString(m.result)}, ${luaString(m.doc)},\n      ${luaString(paramsString(m.params))} },\n`;
  }
  out += "  },\n  objects = {\n";
  for (const o of objects) out += `    ${o.name} = ${luaString(paramsString(o.fields))},\n`;
  out += "  },\n  aliases = {\n";
  for (const a of aliases)
    out += `    ${a.name} = ${luaString(a.literal || a.members.join("|"))},\n`;
  out += "  },\n}\n";
  fs.writeFileSync(path.join(root, "lua/apispec.lua"), out);
}

function writeC() {
  const sorted = [...methods].sort((a, b) => a.name.toLowerCase() < b.name.toLowerCase() ? -1 : 1);
  let c = HEADER("/*").replace(/\n$/, "").replace(/\n--/g, "\n").replace(/^\/\* /, "/* ") ;
  c = `/* Generated by tools/botapi/gen.mjs from ${SOURCE} (Telegram Bot API
 * ${VERSION}). Do not edit: change the generator and run it again. */
#include "net/botapi_methods.h"

#include <stddef.h>
#include <strings.h>

const char botapi_version[] = ${JSON.stringify(VERSION)};

/* Sorted case-insensitively, as Telegram matches method names. */
static const struct botapi_method methods[] = {
`;
  for (const m of sorted) {
    const names = m.params.map(p => p.name + (p.required ? "!" : "")).join(" ");
    const pos = m.positional ? JSON.stringify(m.positional.join(" ")) : "NULL";
    c += `    {${JSON.stringify(m.name)}, ${JSON.stringify(m.result)}, ${JSON.stringify(names)}, ${pos}},\n`;
  }
  c += `};

size_t botapi_method_count(void) { return sizeof methods / sizeof methods[0]; }

const struct botapi_method *botapi_method_at(size_t i) {
  return i < botapi_method_count() ? &methods[i] : NULL;
}

const struct botapi_method *botapi_method_find(const char *name) {
  size_t lo = 0, hi = botapi_method_count();
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int cmp = strcasecmp(name, methods[mid].name);
    if (cmp == 0) return &methods[mid];
    if (cmp < 0) hi = mid;
    else lo = mid + 1;
  }
  return NULL;
}
`;
  fs.writeFileSync(path.join(root, "src/net/botapi_methods.c"), c);
}

// LuaCATS ----------------------------------------------------------------------

function lcats(t) {
  // Class names get the tg. prefix; InputFile is tghost's.
  return t.replace(/"[^"]*"|[A-Za-z_][A-Za-z0-9_]*/g, w => {
    if (w.startsWith('"')) return w;
    if (w === "InputFile") return "tghost.InputFile";
    if (known.has(w)) return "tg." + w;
    return w;
  });
}

function docLines(doc, indent = "") {
  if (!doc) return "";
  return doc.split("\n").map(l => `${indent}---${l}`).join("\n") + "\n";
}

const LUA_KEYWORDS = new Set(["and", "break", "do", "else", "elseif", "end",
  "false", "for", "function", "goto", "if", "in", "local", "nil", "not", "or",
  "repeat", "return", "then", "true", "until", "while"]);

function fieldLine(f, forceOptional) {
  const opt = forceOptional || !f.required ? "?" : "";
  const name = LUA_KEYWORDS.has(f.name) ? `["${f.name}"]` : f.name;
  return `---@field ${name}${opt} ${lcats(f.type)} ${f.doc}\n`;
}

function pascal(name) { return name[0].toUpperCase() + name.slice(1); }

function writeTypes() {
  let out = `---@meta tghost.botapi
${HEADER("--")}-- LuaCATS annotations of the Telegram Bot API for lua-language-server: every
-- object as a class tg.Name, every method of bot.api in both call shapes
-- (a table of parameters, or grammY's positional arguments and then a
-- table of the rest), and the ctx shortcuts. Install beside types/tghost.lua.

`;
  for (const a of aliases) {
    out += docLines(a.doc);
    out += `---@alias tg.${a.name} ${lcats(a.literal || a.members.join("|"))}\n\n`;
  }
  for (const o of objects) {
    out += docLines(o.doc);
    out += `---@class tg.${o.name}\n`;
    for (const f of o.fields) out += fieldLine(f);
    out += "\n";
  }
  out += "---@class tghost.Api\nlocal Api = {}\n\n";
  for (const m of methods) {
    const req = m.params.filter(p => p.required);
    const opt = m.params.filter(p => !p.required);
    const P = pascal(m.name);
    if (opt.length) {
      out += `---Optional parameters of ${m.name}.\n---@class tg.${P}Other\n`;
      for (const f of opt) out += fieldLine(f, true);
      out += "\n";
    }
    if (m.params.length) {
      out += `---Parameters of ${m.name}.\n---@class tg.${P}Params${opt.length ? `: tg.${P}Other` : ""}\n`;
      for (const f of req) out += fieldLine(f);
      out += "\n";
    }
    out += docLines(m.full);
    const result = lcats(m.result);
    if (m.params.length) {
      out += `---@param params ${req.length ? "" : "?"}tg.${P}Params`.replace("params ?", "params? ") + "\n";
      // The positional shape is grammY's (m.positional) or the required
      // parameters in order.
      const posNames = m.positional || req.map(p => p.name);
      const pos = posNames.map(n => {
        const bare = n.replace(/\?$/, "");
        const p = m.params.find(x => x.name === bare);
        return `${LUA_KEYWORDS.has(bare) ? bare + "_" : bare}${n.endsWith("?") ? "?" : ""}: ${lcats(p.type)}`;
      });
      if (opt.length) pos.push(`other?: tg.${P}Other`);
      out += `---@return ${result}\n`;
      if (posNames.length) out += `---@overload fun(${pos.join(", ")}): ${result}\n`;
      out += `function Api.${m.name}(params) end\n\n`;
    } else {
      out += `---@return ${result}\nfunction Api.${m.name}() end\n\n`;
    }
  }
  // ctx shortcuts
  out += "---@class tghost.Context\nlocal Context = {}\n\n";
  const byName = new Map(methods.map(m => [m.name, m]));
  for (const s of shortcuts) {
    if (s.note.includes("types/tghost.lua")) continue;
    const m = byName.get(s.method);
    if (!m) throw new Error(`lua/shortcuts.lua: ${s.name} calls ${s.method}, which the Bot API does not have`);
    const fills = targets.get(s.target);
    if (!fills) throw new Error(`lua/shortcuts.lua: ${s.name}: unknown target ${s.target}`);
    const args = s.args || m.params.filter(p => p.required && !fills.includes(p.name))
      .map(p => p.name);
    out += `---${s.note || `${m.name} ${describeTarget(s.target)}.`} ${m.doc}\n`;
    const names = [];
    for (const a of args) {
      const opt = a.endsWith("?");
      const pname = a.replace(/\?$/, "");
      const p = m.params.find(x => x.name === pname);
      const type = p ? lcats(p.type) : "any";
      out += `---@param ${pname}${opt ? "?" : ""} ${type}\n`;
      names.push(pname);
    }
    out += `---@param other? ${m.params.some(p => !p.required) ? `tg.${pascal(m.name)}Other` : "table"}\n`;
    out += `---@return ${lcats(m.result)}\n`;
    out += `function Context:${s.name}(${[...names, "other"].join(", ")}) end\n\n`;
  }
  fs.writeFileSync(path.join(root, "types/botapi.lua"), out);
}

function describeTarget(t) {
  const text = {
    chat: "to this chat", chat_only: "in this chat", message: "on this update's message",
    edit: "on this update's message (or inline message)", source: "with this update's message",
    sources: "from this chat", author: "on the update's sender in this chat",
    user: "for the update's sender", callback: "for this callback query",
    inline: "for this inline query", shipping: "for this shipping query",
    pre_checkout: "for this pre-checkout query", join_request: "for this join request",
    topic: "in this message's forum topic", business: "for this business connection",
    business_message: "on this business message", none: "",
    payment: "for this message's successful payment",
  };
  return text[t] ?? `(${t})`;
}

function writeGrammyFixture() {
  let out = HEADER("--");
  out += `-- The methods of grammY's Context class (grammy ${grammyPkg.version}): what
-- tests/lua/shortcuts.lua holds tghost's ctx against.
return {\n`;
  for (const n of grammyContext) out += `  ${luaString(n)},\n`;
  out += "}\n";
  fs.writeFileSync(path.join(root, "tests/lua/fixtures/grammy_context.lua"), out);
}

writeApispec();
writeC();
writeTypes();
writeGrammyFixture();
fs.unlinkSync(shim);
console.log(`Bot API ${VERSION} (${SOURCE}): ${methods.length} methods, ` +
            `${objects.length} objects, ${aliases.length} unions; ` +
            `${shortcuts.length} ctx shortcuts; grammY's Context has ` +
            `${grammyContext.length} methods`);
