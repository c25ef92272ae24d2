// Parses an AsyncAPI document with the official parser (@asyncapi/parser, its default
// Spectral ruleset, relative file $refs resolved from the document's own path) and prints
// every diagnostic. Exit status: 0 when there is no error and no warning, 1 when there is
// either, 2 on bad usage. Infos and hints are printed but do not fail: the ruleset uses them
// for suggestions, not for defects (the contract is "no error and no warning").
//
//   node scripts/asyncapi/validate.mjs schemas/asyncapi.yaml
//
// scripts/asyncapi.sh installs the pinned parser (npm ci) and runs this; use that.
import { existsSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { DiagnosticSeverity, Parser, fromFile } from '@asyncapi/parser';

const SEVERITY = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};
const FAILING = new Set([DiagnosticSeverity.Error, DiagnosticSeverity.Warning]);

function shown(file) {
  const near = relative(process.cwd(), file);
  return near.startsWith('..') ? file : near;
}

function where(diagnostic) {
  const path = (diagnostic.path ?? []).join('.') || '(document)';
  const line = diagnostic.range?.start?.line;
  const file = diagnostic.source ? `${shown(diagnostic.source)}:` : '';
  return line === undefined ? `${file}${path}` : `${file}${line + 1} ${path}`;
}

async function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node validate.mjs ASYNCAPI_FILE');
    return 2;
  }
  const file = resolve(argv[0]);
  if (!existsSync(file)) {
    console.error(`error: ${argv[0]} does not exist`);
    return 2;
  }
  // The default ruleset, untouched: no rule is switched off here.
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, file).parse();
  const counts = { error: 0, warning: 0, info: 0, hint: 0 };
  for (const diagnostic of diagnostics) {
    const severity = SEVERITY[diagnostic.severity] ?? `severity ${diagnostic.severity}`;
    counts[severity] = (counts[severity] ?? 0) + 1;
    console.log(`${severity} ${diagnostic.code} at ${where(diagnostic)}: ${diagnostic.message}`);
  }
  const summary = Object.entries(counts)
    .map(([severity, count]) => `${count} ${severity}(s)`)
    .join(', ');
  const failed = diagnostics.some((diagnostic) => FAILING.has(diagnostic.severity));
  if (document === undefined || failed) {
    console.log(`FAILED ${argv[0]}: ${summary}${document === undefined ? '; it did not parse' : ''}`);
    return 1;
  }
  console.log(`ok ${argv[0]}: AsyncAPI ${document.version()}, ${summary}`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
