/**
 * The dashboard's style sheet.
 *
 * @module
 */

/** `dashboard.css` of the dashboard. */
export const DASHBOARD_CSS: string = String
  .raw`:root { --bg: #f6f7f9; --fg: #1d2330; --muted: #6b7384; --card: #fff; --line: #e2e5ea;
  --in: #2f6fdf; --out: #e07b22; --clients: #2a9d6a; --bad: #c0392b; font: 14px/1.4 system-ui, sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); }
header { display: flex; gap: 1rem; align-items: baseline; padding: .8rem 1.2rem; background: var(--fg); color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; flex: 1; }
header #version { color: #aab; font-weight: normal; font-size: .9rem; }
.status { font-size: .85rem; color: #9fd; }
.status.down { color: #f99; }
main { padding: 1rem 1.2rem; display: grid; gap: 1rem; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: .6rem; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; display: flex; flex-direction: column; }
.tile .label { color: var(--muted); font-size: .8rem; }
.tile b { font-size: 1.5rem; font-variant-numeric: tabular-nums; }
.tile small { color: var(--muted); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: .6rem; }
figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .6rem; }
figcaption { color: var(--muted); font-size: .85rem; margin-bottom: .3rem; }
canvas { width: 100%; height: 180px; display: block; }
.key { font-weight: bold; margin-left: .5rem; }
.key.in { color: var(--in); } .key.out { color: var(--out); }
.clients { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; }
.clients h2 { font-size: 1rem; margin: .2rem 0 .6rem; }
.toolbar { display: flex; gap: .5rem; align-items: center; margin-bottom: .5rem; }
.toolbar input { flex: 1; max-width: 320px; padding: .3rem .5rem; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: .8rem; }
td.id { font-family: ui-monospace, monospace; cursor: pointer; color: var(--in); }
button { font: inherit; padding: .2rem .6rem; cursor: pointer; }
button.disconnect { color: var(--bad); }
#session { background: var(--bg); padding: .6rem; overflow: auto; max-height: 300px; }
`;
