// Validates FHIR R4 resources with FHIR.js (the core R4 structure definitions and value sets it
// ships): each file named on the command line is one JSON resource. Prints one JSON line per file,
// {"event":"fhir","file":...,"valid":bool,"errors":[...],"warnings":[...]}, and exits 1 when any
// file has an error. Unexpected properties are errors, as they are to the HL7 validator.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const { Fhir } = createRequire(import.meta.url)("fhir");
const fhir = new Fhir();
let failed = false;
for (const file of process.argv.slice(2)) {
  let resource;
  try {
    resource = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    console.log(JSON.stringify({ event: "fhir", file, valid: false, errors: [`not JSON: ${e.message}`], warnings: [] }));
    failed = true;
    continue;
  }
  const result = fhir.validate(resource, { errorOnUnexpected: true });
  const pick = (severity) => result.messages.filter((m) => m.severity === severity).map((m) => `${m.location}: ${m.message}`);
  const errors = pick("error");
  const valid = result.valid && errors.length === 0;
  failed ||= !valid;
  console.log(JSON.stringify({ event: "fhir", file, valid, errors, warnings: pick("warning") }));
}
process.exit(failed ? 1 : 0);
