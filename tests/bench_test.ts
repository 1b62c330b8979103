import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CASES, closeAll, fixtures, GROUPS } from "../bench/_cases.ts";
import { chart, colourOf } from "../bench/_svg.ts";

describe("bench fixtures", () => {
  it("every case builds, runs once as a real async function and comes back to rest", async () => {
    // fixtures() throws when a fixture's fn returns a promise without being an async function
    // (Deno.bench would not await it) or when its pool is not back at rest after one run.
    const built = await fixtures(CASES);
    try {
      for (const [i, fixture] of built.entries()) {
        await fixture.fn();
        assert.doesNotThrow(() => fixture.check(), `${CASES[i].group}: ${CASES[i].name}`);
      }
    } finally {
      await closeAll(built);
    }
  });

  it("every group has its floor first, and the leak cases have a live subscriber", () => {
    for (const group of new Set(CASES.map((c) => c.group))) {
      const members = CASES.filter((c) => c.group === group);
      assert.equal(members[0].baseline, true, group);
      assert.equal(members.filter((c) => c.baseline).length, 1, group);
      assert.match(members[0].name, /^floor/, group);
    }
    const leak = CASES.filter((c) => c.group === GROUPS.manyLeak).map((c) => c.name);
    assert.ok(leak.some((name) => name.includes("onEvent") && name.includes("leakDetectionMs")));
  });
});

describe("bench charts", () => {
  it("renders escaped, self-contained SVG with one colour per pool", () => {
    const svg = chart([{
      title: "a <b> & c",
      unit: "ns",
      groups: [{
        label: "g",
        bars: [
          { label: "floor", value: 100 },
          { label: "edgepool", value: 150, low: 140, high: 170 },
          { label: "tarn", value: 4000 },
        ],
      }],
      reference: { value: 100, label: "floor" },
    }], "footer");
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.ok(svg.includes("a &lt;b&gt; &amp; c"));
    assert.ok(!svg.includes("<b>"));
    assert.equal((svg.match(/<rect /g) ?? []).length, 4); // background + 3 bars
    assert.notEqual(colourOf("edgepool"), colourOf("tarn"));
    assert.notEqual(colourOf("edgepool"), colourOf("edgepool, createConcurrency 2"));
    assert.equal(colourOf("edgepool"), colourOf("edgepool: pool.map()"));
  });
});
