// Writes .gz and .br siblings for compressible build outputs larger than 1 KB,
// so the server can answer Accept-Encoding without compressing at run time.
// Usage: node scripts/compress.mjs [DIR]   (default: dist)
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { extname, join, relative } from "node:path";

const EXTS = new Set([".js", ".css", ".html", ".svg", ".json"]);
const MIN_BYTES = 1024;
const dir = process.argv[2] ?? "dist";

function walk(d) {
  return readdirSync(d, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : e.isFile() ? [join(d, e.name)] : []));
}

let count = 0;
for (const file of walk(dir)) {
  if (!EXTS.has(extname(file))) continue;
  const size = statSync(file).size;
  if (size <= MIN_BYTES) continue;
  const data = readFileSync(file);
  // mtime 0 in the gzip header keeps the output byte-for-byte reproducible.
  const gz = gzipSync(data, { level: 9 });
  const br = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: size,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
    },
  });
  writeFileSync(file + ".gz", gz);
  writeFileSync(file + ".br", br);
  count++;
  console.log(`  ${relative(dir, file).padEnd(44)} ${String(size).padStart(7)} B  gz ${String(gz.length).padStart(6)} B  br ${String(br.length).padStart(6)} B`);
}
console.log(`compress: ${count} file(s) in ${dir}`);
