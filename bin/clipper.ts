#!/usr/bin/env node
/** The `clipper` command: a thin shell over the library (see src/cli/program.ts). */
import { main } from "../src/cli/program.js";

await main(process.argv);
