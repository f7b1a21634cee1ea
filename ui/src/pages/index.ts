// The page registry: one entry per dashboard page. The nav and the router both
// read this list, so adding a page is adding an entry here.
import type { FunctionComponent } from "preact";
import { Overview } from "./Overview";

export interface PageDef {
  id: string;
  title: string;
  /** Canonical path, used by nav links. */
  path: string;
  /** Other paths that show the same page. */
  aliases?: string[];
  component: FunctionComponent;
}

export const pages: PageDef[] = [{ id: "overview", title: "Overview", path: "/", aliases: ["/overview"], component: Overview }];

export function findPage(path: string): PageDef | undefined {
  const p = path.length > 1 ? path.replace(/\/+$/, "") : path;
  return pages.find((d) => d.path === p || (d.aliases ?? []).includes(p));
}
