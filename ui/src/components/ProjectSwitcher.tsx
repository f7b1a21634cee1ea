// The org and project switcher in the top bar: a labelled native select
// (keyboard and screen-reader support for free), projects grouped by org.
import { groupByOrg, selectProject, useProject } from "../project";

export function ProjectSwitcher() {
  const pv = useProject();
  if (!pv.projects) {
    return pv.error ? (
      <span class="switcher-note" data-testid="project-switcher-error" title={String((pv.error as Error).message ?? pv.error)}>
        projects unavailable
      </span>
    ) : null;
  }
  if (pv.projects.length === 0) {
    return (
      <span class="switcher-note" data-testid="project-switcher-empty">
        no projects
      </span>
    );
  }
  return (
    <div class="switcher" data-testid="project-switcher-wrap">
      <label class="switcher-label" for="project-switcher">
        Project
      </label>
      <select
        id="project-switcher"
        value={pv.currentId ?? ""}
        onChange={(e) => selectProject(e.currentTarget.value)}
        data-testid="project-switcher"
        data-project-id={pv.currentId ?? ""}
        data-role={pv.role ?? ""}
        title={pv.current ? `${pv.current.org_name ?? ""} / ${pv.current.name} (${pv.current.role})` : undefined}
      >
        {groupByOrg(pv.projects).map((g) => (
          <optgroup key={g.orgId} label={g.orgName} data-testid="project-switcher-org" data-org-id={g.orgId}>
            {g.projects.map((p) => (
              <option key={p.id} value={p.id} data-testid="project-option" data-org-id={p.org_id}>
                {g.orgName} / {p.name} ({p.role})
              </option>
            ))}
          </optgroup>
        ))}
      </select>
    </div>
  );
}
