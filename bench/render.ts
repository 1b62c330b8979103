/**
 * Re-renders `bench/results/*.svg` and the README's benchmark tables from the result files,
 * without running anything: `node_modules/.bin/node bench/render.ts`.
 *
 * @module
 */

import { render } from "./_report.ts";

render();
console.log("rendered bench/results/*.svg and the README tables");
