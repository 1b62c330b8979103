/**
 * The Cloudflare Worker: the edge scenarios behind a module worker's `fetch` handler, run by
 * `workerd` in `tests/runtimes/workerd_test.ts`.
 */
import { handle } from "./scenarios.ts";

export default {
  fetch: (request: Request): Promise<Response> => handle(request),
};
