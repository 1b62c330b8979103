/**
 * The Vercel Edge Runtime function: the edge scenarios behind a `fetch` event listener (the
 * service-worker syntax that `edge-runtime` evaluates), run in `tests/runtimes/edge_runtime_test.ts`.
 */
import { handle } from "./scenarios.ts";

interface FetchEvent extends Event {
  readonly request: Request;
  respondWith(response: Response | Promise<Response>): void;
}

addEventListener("fetch", (event) => {
  const fetchEvent = event as FetchEvent;
  fetchEvent.respondWith(handle(fetchEvent.request));
});
