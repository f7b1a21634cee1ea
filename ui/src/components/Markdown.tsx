// Markdown written by users (model cards), rendered with marked and then
// sanitized by DOMPurify before it reaches the page: scripts, event handlers
// and javascript: links never survive, whatever the description says.
import DOMPurify from "dompurify";
import { marked } from "marked";

export function markdownHtml(text: string): string {
  const html = marked.parse(text, { async: false, gfm: true, breaks: true }) as string;
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true } });
}

export function Markdown(props: { text: string; testid?: string }) {
  return <div class="markdown" data-testid={props.testid} dangerouslySetInnerHTML={{ __html: markdownHtml(props.text) }} />;
}
