// What a project page shows while the caller's projects load, when loading
// them failed, or when the caller is in no project yet.
import type { ComponentChildren } from "preact";
import type { ProjectView } from "../project";
import { reloadProjects } from "../project";
import { ErrorPanel } from "./ui";

export function NoProject(props: { pv: ProjectView; hint?: ComponentChildren }) {
  const { pv } = props;
  if (pv.error !== null) return <ErrorPanel error={pv.error} onRetry={() => void reloadProjects()} />;
  if (pv.projects === null) return <p class="muted">Loading…</p>;
  return (
    <div class="notice" data-testid="no-project">
      <strong>You are not in any project yet.</strong>
      {props.hint && <p>{props.hint}</p>}
    </div>
  );
}
