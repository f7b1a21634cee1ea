// The page registry: one entry per dashboard page. The nav and the router both
// read this list, so adding a page is adding an entry here.
import type { FunctionComponent } from "preact";
import type { ProjectView } from "../project";
import { AcceptInvitation } from "./AcceptInvitation";
import { ApiKeys } from "./ApiKeys";
import { Approvals } from "./Approvals";
import { Audit } from "./Audit";
import { Compare } from "./Compare";
import { Experiments } from "./Experiments";
import { Invitations } from "./Invitations";
import { Login } from "./Login";
import { Members } from "./Members";
import { Model } from "./Model";
import { Models } from "./Models";
import { Overview } from "./Overview";
import { Run } from "./Run";
import { Runs } from "./Runs";
import { Serving } from "./Serving";
import { UploadModel } from "./UploadModel";

export interface PageDef {
  id: string;
  title: string;
  /** Canonical path, used by nav links. */
  path: string;
  /** Other paths that show the same page. */
  aliases?: string[];
  /**
   * Who sees it: "public" (anyone), "user" (signed in; others go to the login
   * page), "admin" (signed in; listed in the nav only for server admins, and
   * the server answers 403 to everyone else).
   */
  access: "public" | "user" | "admin";
  /** Paths with parameters (e.g. /runs/{id}) this page also shows. */
  match?: (path: string) => boolean;
  /** The nav entry marked current while this page shows (default: its own). */
  section?: string;
  /** Left out of the navigation. */
  hidden?: boolean;
  /** Listed in the navigation only when this holds for the current project (the page still opens). */
  navIf?: (pv: ProjectView) => boolean;
  component: FunctionComponent;
}

export const pages: PageDef[] = [
  { id: "overview", title: "Overview", path: "/", aliases: ["/overview"], access: "public", component: Overview },
  { id: "experiments", title: "Experiments", path: "/experiments", access: "user", component: Experiments },
  {
    id: "runs",
    title: "Runs",
    path: "/experiments/{id}",
    access: "user",
    hidden: true,
    section: "experiments",
    match: (p) => /^\/experiments\/[^/]+$/.test(p),
    component: Runs,
  },
  {
    id: "run",
    title: "Run",
    path: "/runs/{id}",
    access: "user",
    hidden: true,
    section: "experiments",
    match: (p) => /^\/runs\/[^/]+$/.test(p),
    component: Run,
  },
  { id: "compare", title: "Compare runs", path: "/compare", access: "user", hidden: true, section: "experiments", component: Compare },
  { id: "models", title: "Models", path: "/models", access: "user", component: Models },
  {
    id: "upload-model",
    title: "Upload a model",
    path: "/models/upload",
    access: "user",
    hidden: true,
    section: "models",
    component: UploadModel,
  },
  {
    id: "model",
    title: "Model",
    path: "/models/{name}",
    access: "user",
    hidden: true,
    section: "models",
    match: (p) => /^\/models\/.+$/.test(p),
    component: Model,
  },
  { id: "serving", title: "Serving", path: "/serving", access: "user", component: Serving },
  { id: "approvals", title: "Approvals", path: "/approvals", access: "user", component: Approvals },
  { id: "members", title: "Members", path: "/members", access: "user", component: Members },
  {
    id: "invitations",
    title: "Invitations",
    path: "/invitations",
    access: "user",
    navIf: (pv) => pv.canAdminOrg,
    component: Invitations,
  },
  {
    id: "accept-invitation",
    title: "Accept invitation",
    path: "/invitations/accept",
    access: "user",
    hidden: true,
    component: AcceptInvitation,
  },
  { id: "api-keys", title: "API keys", path: "/api-keys", access: "user", component: ApiKeys },
  { id: "audit", title: "Audit log", path: "/audit", access: "admin", component: Audit },
  { id: "login", title: "Sign in", path: "/login", access: "public", hidden: true, component: Login },
];

export function findPage(path: string): PageDef | undefined {
  const p = path.length > 1 ? path.replace(/\/+$/, "") : path;
  return pages.find((d) => d.path === p || (d.aliases ?? []).includes(p) || (d.match?.(p) ?? false));
}
