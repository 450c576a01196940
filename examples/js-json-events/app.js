// The seeds' JSON pipeline as a JavaScript transform, the twin of `examples/json-events`
// (Rust) and `examples/python-json-events`: from_json, lower(city), keep config.events,
// to_json of { lower_city, domain, behavior }. Built by `scripts/build-js-guests.sh`
// (ComponentizeJS, world `transformer`).

import { emit } from "sluice:pipeline/output@0.2.0";
import * as sluice from "../../guest-sdk/js/sluice-guest.js";

let events = null;

export const transform = sluice.transform({
  init(config, inputSchema) {
    const cfg = JSON.parse(config || "null") ?? {};
    events = Array.isArray(cfg.events) ? new Set(cfg.events) : null;
    return {
      outputSchema: sluice.schema([{ name: "value", type: "utf8" }]),
      reads: new Uint32Array([sluice.columnIndex(inputSchema, "value")]),
    };
  },
  process(batch) {
    const [city, domain, event] = sluice.fromJson(sluice.utf8Values(batch, 0), ["city", "domain", "event"]);
    const keep = [];
    event.forEach((e, i) => {
      if (e !== null && (events === null || events.has(e))) keep.push(i);
    });
    const values = sluice.toJson({
      lower_city: keep.map((i) => (city[i] === null ? null : city[i].toLowerCase())),
      domain: keep.map((i) => domain[i]),
      behavior: keep.map((i) => event[i]),
    });
    emit(sluice.batch([sluice.utf8Column(values)]));
  },
});
