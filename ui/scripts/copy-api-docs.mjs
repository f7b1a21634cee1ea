// Copies Swagger UI's prebuilt bundle (npm swagger-ui-dist) into dist/api-docs
// so the kiln binary can serve /api/docs with no network access. The page
// itself is served by the server; init.js points Swagger UI at the live
// /api/openapi.json, which is generated from the route table.
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const src = dirname(require.resolve("swagger-ui-dist/package.json"));
const out = join(process.argv[2] ?? "dist", "api-docs");
mkdirSync(out, { recursive: true });
for (const f of ["swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"]) {
  copyFileSync(join(src, f), join(out, f));
}
// One definition per area (the document's top-level tags, served by
// /api/openapi.json?tag=...), picked in the top bar: Swagger UI 5 stops
// rendering a single document past ~140 operations.
writeFileSync(
  join(out, "init.js"),
  `window.addEventListener("load", function () {
  fetch("/api/openapi.json")
    .then(function (r) { return r.json(); })
    .then(function (doc) {
      var urls = (doc.tags || []).map(function (t) {
        return { url: "/api/openapi.json?tag=" + encodeURIComponent(t.name), name: t.name };
      });
      var picked = new URLSearchParams(window.location.search).get("urls.primaryName");
      window.ui = SwaggerUIBundle({
        urls: urls,
        "urls.primaryName": picked || (urls[0] && urls[0].name),
        dom_id: "#swagger-ui",
        deepLinking: true,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        plugins: [SwaggerUIBundle.plugins.DownloadUrl],
        layout: "StandaloneLayout",
      });
    });
});
`,
);
console.log("api-docs: copied Swagger UI " + require("swagger-ui-dist/package.json").version);
