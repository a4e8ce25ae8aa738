// Validates CloudNativePG Cluster objects (postgresql.cnpg.io/v1) offline, two ways:
//  1. the JSON schema of CloudNativePG's own CRD (v1.29.0 release manifest), compiled into the
//     npm package @kubernetes-models/cloudnative-pg: types, enums, ranges, required fields;
//  2. TypeScript's excess-property check against the same package's generated ICluster type:
//     unknown (misspelt) fields anywhere in the object, which the CRD schema lets through but
//     `kubectl apply` (strict field validation) rejects.
// Usage: node validate-cnpg.mjs OBJECTS.json   (a JSON array of {source, object})
// Exit status: 0 all valid, 1 invalid, 2 usage/internal error.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { Cluster } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/Cluster";

const here = path.dirname(fileURLToPath(import.meta.url));
const input = process.argv[2];
if (!input) {
  console.error("usage: node validate-cnpg.mjs OBJECTS.json");
  process.exit(2);
}
const items = JSON.parse(fs.readFileSync(input, "utf8"));
if (!Array.isArray(items) || items.length === 0) {
  console.error("validate-cnpg: no objects given");
  process.exit(2);
}

let failures = 0;

// 1. CRD schema
items.forEach(({ source, object }) => {
  const name = `${source}: Cluster/${object?.metadata?.name}`;
  try {
    new Cluster(object).validate();
    console.log(`  ok   CRD schema       ${name}`);
  } catch (err) {
    failures += 1;
    console.log(`  FAIL CRD schema       ${name}: ${err.message}`);
  }
});

// 2. unknown fields: one typed constant per object, compiled with tsc (no emit)
const work = fs.mkdtempSync(path.join(here, ".work-"));
try {
  const file = path.join(work, "clusters.ts");
  const lines = ['import type { ICluster } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/Cluster";'];
  items.forEach(({ object }, i) => {
    lines.push(`export const cluster${i}: ICluster = ${JSON.stringify(object)};`);
  });
  fs.writeFileSync(file, lines.join("\n") + "\n");
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  });
  const diagnostics = ts.getPreEmitDiagnostics(program);
  const byLine = new Map();
  for (const d of diagnostics) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n").split("\n")[0];
    if (!d.file || d.file.fileName !== file) {
      // a problem in the package itself or its resolution: never pass silently
      byLine.set(-1, [...(byLine.get(-1) || []), message]);
      continue;
    }
    const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
    byLine.set(line, [...(byLine.get(line) || []), message]);
  }
  if (byLine.has(-1) || byLine.has(0)) {
    failures += 1;
    console.log(`  FAIL field names     (type check could not run): ${[...(byLine.get(-1) || []), ...(byLine.get(0) || [])].join("; ")}`);
  }
  // "'"foo"' does not exist in type '{...huge...}'" -> "unknown field spec.foo"
  const explain = (object, message) => {
    const m = message.match(/'"?([^"']+)"?' does not exist in type/);
    if (!m) return message.length > 200 ? message.slice(0, 200) + "..." : message;
    const paths = [];
    const walk = (node, at) => {
      if (node && typeof node === "object") {
        for (const [k, v] of Object.entries(node)) {
          const here = Array.isArray(node) ? `${at}[${k}]` : at ? `${at}.${k}` : k;
          if (k === m[1] && !Array.isArray(node)) paths.push(here);
          walk(v, here);
        }
      }
    };
    walk(object, "");
    return `unknown field ${paths.join(", ") || m[1]}`;
  };
  items.forEach(({ source, object }, i) => {
    const name = `${source}: Cluster/${object?.metadata?.name}`;
    const problems = (byLine.get(i + 1) || []).map((msg) => explain(object, msg));
    if (problems.length) {
      failures += 1;
      console.log(`  FAIL field names      ${name}: ${problems.join("; ")}`);
    } else {
      console.log(`  ok   field names      ${name}`);
    }
  });
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

if (failures) {
  console.log(`validate-cnpg: ${failures} problem(s)`);
  process.exit(1);
}
