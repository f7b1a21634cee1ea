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
for (const f of ["swagger-ui-bundle.js", "swagger-ui.css"]) copyFileSync(join(src, f), join(out, f));
writeFileSync(
  join(out, "init.js"),
  `window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
`,
);
console.log("api-docs: copied Swagger UI " + require("swagger-ui-dist/package.json").version);
