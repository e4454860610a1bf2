// Renders a template of local_student_dashboard from its own "Example context (json):" block to a static
// HTML page, for the screenshot in docs/moodle-plugin.md. Not part of the plugin; needs Node and the
// "mustache" npm package (npm install --prefix /tmp/render mustache; NODE_PATH=/tmp/render/node_modules),
// and php on PATH to read the plugin's language file.
//
// Usage: node render-example.mjs <template name> <out.html> [path to Moodle's theme/boost/style/moodle.css]
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const Mustache = require('mustache');

const [name = 'dashboard', out = '/tmp/dashboard.html', css = ''] = process.argv.slice(2);
const plugindir = join(dirname(fileURLToPath(import.meta.url)), '..', 'local', 'student_dashboard');
const source = readFileSync(join(plugindir, 'templates', name + '.mustache'), 'utf8');

const example = source.match(/Example context \(json\):\s*([\s\S]*?)\n\}\}/);
if (!example) {
    throw new Error('No example context in ' + name);
}
const context = JSON.parse(example[1]);

// The plugin's strings, and the few core strings the templates use.
const strings = JSON.parse(execFileSync('php', ['-r',
    '$string = []; include($argv[1]); echo json_encode($string);', join(plugindir, 'lang', 'en', 'local_student_dashboard.php')]));
const core = { fullname: 'Full name', email: 'Email address', date: 'Date', status: 'Status', search: 'Search' };

// Moodle's {{#str}} key, component, param {{/str}} helper.
context.str = () => (text, render) => {
    const [key, component = 'core', param] = text.split(',').map((s) => s.trim());
    const table = component === 'local_student_dashboard' ? strings : core;
    if (!(key in table)) {
        throw new Error('Missing string ' + key + ', ' + component);
    }
    return table[key].replace('{$a}', param === undefined ? '' : render(param));
};

// Drop the template's comment blocks, then render.
const body = Mustache.render(source.replace(/\{\{![\s\S]*?\}\}/g, ''), context);
const style = css && existsSync(css) ? `<link rel="stylesheet" href="file://${css}">` : `<style>
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1d2125;background:#f8f9fa;margin:0}
.card{background:#fff;border:1px solid #dee2e6;border-radius:.5rem}.card-body{padding:1.25rem}.mb-3{margin-bottom:1rem}
.h5{font-size:1.17rem;margin:0 0 .75rem}.row{display:flex;flex-wrap:wrap;margin:0}.col-sm-3,.col-sm-4{width:33%;font-weight:600}
.col-sm-8,.col-sm-9{width:66%;margin:0}dt,dd{padding:.2rem 0}.table{width:100%;border-collapse:collapse}
.table th,.table td{text-align:left;padding:.4rem;border-top:1px solid #dee2e6}.text-end{text-align:right!important}
.badge{display:inline-block;padding:.3em .6em;border-radius:.35rem;font-size:.8em;font-weight:700;color:#fff}
.bg-success{background:#357a32}.bg-warning{background:#f0ad4e;color:#1d2125}.bg-danger{background:#ca3120}
.bg-info{background:#5bc0de;color:#1d2125}.bg-primary{background:#0f6cbf}.fw-bold{font-weight:700}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0,0,0,0)}.text-muted{color:#6a737b}
</style>`;
writeFileSync(out, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Student dashboard</title>${style}</head>
<body><div class="container-fluid" style="max-width:960px;margin:0 auto;padding:1.5rem">
<h2 class="mb-3">${strings.pluginname}</h2>
${body}
</div></body></html>
`);
console.log('wrote ' + out);
