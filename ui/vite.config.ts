// Vite build for the Kiln dashboard. The output in dist/ is embedded into the
// kiln binary by scripts/embed_assets.py, so file names are content-hashed and
// the bundle is kept small.
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

export default defineConfig({
  plugins: [preact({ prerender: { enabled: false } })],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    target: "es2020",
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    rollupOptions: {
      output: {
        entryFileNames: "assets/[name]-[hash].js",
        chunkFileNames: "assets/[name]-[hash].js",
        assetFileNames: "assets/[name]-[hash][extname]",
      },
    },
  },
  server: {
    // `npm run dev` proxies API calls to a locally running `kiln server`.
    proxy: {
      "/api": process.env.KILN_URL ?? "http://127.0.0.1:8080",
      "/healthz": process.env.KILN_URL ?? "http://127.0.0.1:8080",
      "/readyz": process.env.KILN_URL ?? "http://127.0.0.1:8080",
    },
  },
});
