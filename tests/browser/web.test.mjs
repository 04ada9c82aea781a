// The web page's browser tests: Debian's chromium driven by playwright-core against a
// running Vesper, as tests/browser.rs starts it. That test writes the fixture (the server's
// URL, the people and their passwords, the data it made through the API) and names it in
// VESPER_BROWSER_FIXTURE. The contract checked is docs/web.md.
//
//   VESPER_BROWSER_FIXTURE=/path/to/fixture.json node web.test.mjs [name filter]
//   VESPER_BROWSER_FILTER=sub-task cargo test --test browser   # only the steps named so
//
// Each step runs in a browser context of its own (its own cookies), with a time limit;
// a failing step leaves a screenshot `failed-<step>.png` and the page's text in the output.
// The last line is "N passed, N failed"; the exit code is 1 when a step failed.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, request } from 'playwright-core';

const STEP_TIMEOUT_MS = 90_000;
const ACTION_TIMEOUT_MS = 15_000;

const fixturePath = process.env.VESPER_BROWSER_FIXTURE;
if (!fixturePath) {
  console.error('VESPER_BROWSER_FIXTURE is not set: run this through `cargo test --test browser`');
  process.exit(2);
}
const fx = JSON.parse(readFileSync(fixturePath, 'utf8'));
const BASE = fx.baseUrl.replace(/\/$/, '');
const SHOTS = fx.screenshotDir;
mkdirSync(SHOTS, { recursive: true });
const { admin, user, external, client, client2 } = fx.users;
const site = fx.projects.clientSite;
const shop = fx.projects.otherClient;
const internal = fx.projects.internal;

// ---- the API, to set up and to check what the pages did --------------------------------

const apiContext = await request.newContext({ baseURL: BASE, ignoreHTTPSErrors: true });

/** One API call in JSON; `kind` is 'get' for reads and sign-in, 'post' for writes. */
async function api(kind, call, params = {}, sessionId = undefined) {
  const form = { ...params, retType: 'json' };
  if (sessionId) form.sessionId = sessionId;
  const r = await apiContext.post(`/api/v2/service/${kind}/${call}`, { form });
  const body = await r.text();
  let json;
  try {
    json = JSON.parse(body);
  } catch {
    throw new Error(`${call}: not JSON (${r.status()}): ${body.slice(0, 500)}`);
  }
  return { status: r.status(), json };
}

async function apiOk(kind, call, params, sessionId) {
  const r = await api(kind, call, params, sessionId);
  assert.equal(r.status, 200, `${call} ${JSON.stringify(params)}: ${JSON.stringify(r.json)}`);
  return r.json;
}

let adminSessionCache;
async function adminSession() {
  adminSessionCache ??= (await apiOk('get', 'authentication/signIn', { login: admin.login, password: admin.password })).sessionId;
  return adminSessionCache;
}

const idOf = (o) => Number(o.id);

async function apiGet(service, id) {
  return (await apiOk('get', `${service}/getById`, { id: String(id), loadTeam: '1' }, await adminSession()));
}

/** Every project, as the admin lists them. */
async function allProjects() {
  return (await apiOk('get', 'projects/getAll', {}, await adminSession())).items;
}

async function activitiesOf(taskId) {
  const items = (await apiOk('get', 'activity/getList', { 'filter[taskId]': String(taskId), count: '100' }, await adminSession())).items;
  assert.ok(items.every((a) => Number(a.taskId) === Number(taskId)), `activity/getList filter[taskId]=${taskId} answered other tasks' activities`);
  return items;
}

// ---- the browser ----------------------------------------------------------------------

const browser = await chromium.launch({ executablePath: fx.chromium, headless: true });

/** A fresh context (no cookies) and a page in it, at this width. */
async function freshPage(width = 1280) {
  const context = await browser.newContext({
    baseURL: BASE,
    ignoreHTTPSErrors: true,
    viewport: { width, height: 900 },
    acceptDownloads: true,
    timezoneId: 'Europe/Paris',
    locale: 'en-US',
  });
  context.setDefaultTimeout(ACTION_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error on ${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`script error on ${page.url()}: ${e.message}`));
  page.problems = problems;
  current.pages.push(page);
  return { context, page };
}

/** The page's path and query, e.g. `/signin?next=%2F`. */
function pathOf(page) {
  const u = new URL(page.url());
  return u.pathname + u.search;
}

/** Opens a path and answers the response (its status checked unless `status` is null). */
async function open(page, path, status = 200) {
  const r = await page.goto(path);
  assert.ok(r, `no response for ${path}`);
  if (status !== null) {
    assert.equal(r.status(), status, `GET ${path}: status ${r.status()}, expected ${status}; page: ${await pageText(page, 300)}`);
  }
  return r;
}

async function pageText(page, max = 2000) {
  try {
    const t = (await page.locator('body').innerText()).replace(/\s+/g, ' ').trim();
    return t.length > max ? `${t.slice(0, max)}...` : t;
  } catch (e) {
    return `(no text: ${e.message})`;
  }
}

/** Clicks the button and answers the response of the form's POST (after redirects, the page shown). */
async function submit(page, button) {
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    button.click(),
  ]);
  return response;
}

/** The status of the POST a click sends (before any redirect). */
async function submitStatus(page, button, pathPattern) {
  const [posted] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && pathPattern.test(new URL(r.url()).pathname)),
    button.click(),
  ]);
  await page.waitForLoadState('load');
  return posted.status();
}

const button = (scope, name) => scope.getByRole('button', { name, exact: true });

/** The form holding the button with this label. */
const formWith = (page, name) => page.locator('form').filter({ has: button(page, name) });

async function signIn(page, who) {
  await open(page, '/signin');
  await page.locator('#login').fill(who.login);
  await page.locator('#password').fill(who.password);
  await submit(page, button(page, 'Sign in'));
  assert.notEqual(new URL(page.url()).pathname, '/signin',
    `${who.role} ${who.login} was not signed in; the page says: ${await pageText(page, 500)}`);
  await mainNav(page).waitFor({ state: 'visible' });
}

const mainNav = (page) => page.locator('nav[aria-label="Main"]');

async function signOut(page) {
  await submit(page, button(page, 'Sign out'));
  assert.equal(new URL(page.url()).pathname, '/signin', `after signing out the page is ${page.url()}`);
}

async function sessionCookie(context) {
  return (await context.cookies()).find((c) => c.name === '__Host-vesper-session');
}

/** Chooses team members by their names, in a multiple select or as check boxes. */
async function pickTeam(page, kind, names) {
  const field = `${kind}[team][]`;
  const select = page.locator(`select[name="${field}"]`);
  if (await select.count()) {
    const options = await select.locator('option').evaluateAll((os) => os.map((o) => ({ value: o.value, text: o.textContent })));
    const values = names.map((n) => {
      const o = options.find((o) => o.text.includes(n));
      assert.ok(o, `no option "${n}" in ${field}: ${options.map((o) => o.text.trim()).join(', ')}`);
      return o.value;
    });
    await select.selectOption(values);
    return;
  }
  for (const n of names) {
    const box = page.locator(`input[type=checkbox][name="${field}"]`).and(page.getByLabel(n, { exact: false }));
    assert.equal(await box.count(), 1, `no single check box for "${n}" in ${field}`);
    await box.check();
  }
}

/** The ids of the team members the form has chosen, sorted. */
async function checkedTeam(page, kind) {
  const field = `${kind}[team][]`;
  const ids = await page.evaluate((field) => {
    const form = document.querySelector(`[name="${field}"]`)?.form;
    if (!form) return [];
    return new FormData(form).getAll(field).filter((v) => v !== '').map(Number);
  }, field);
  return ids.sort((a, b) => a - b);
}

/** Fills a text field or chooses in a select. */
async function fillOrSelect(locator, value) {
  const tag = await locator.evaluate((e) => e.tagName);
  if (tag === 'SELECT') await locator.selectOption(value);
  else await locator.fill(value);
}

/** The text shown for an attribute labelled `label` (a <dt>/<dd>, <th>/<td> or label and value). */
async function attribute(page, label) {
  const texts = await page.evaluate((label) => {
    const out = [];
    for (const e of document.querySelectorAll('dt, th, .label, label, span, strong, b')) {
      if (e.textContent.trim().replace(/:$/, '').toLowerCase() !== label.toLowerCase()) continue;
      const next = e.nextElementSibling;
      if (next) out.push(next.textContent.trim());
    }
    return out;
  }, label);
  assert.ok(texts.length > 0, `no attribute "${label}" on ${page.url()}: ${await pageText(page, 800)}`);
  return texts[0];
}

/** The project page's task rows in order: each task's link and its depth in the tree (a
 * `depth-N` class, or else how deep its list item is nested). */
async function taskTree(page) {
  return page.evaluate(() => [...document.querySelectorAll('main li')]
    .map((li) => {
      const a = [...li.children].find((c) => c.matches('a[href^="/tasks/"]') && /^\/tasks\/\d+$/.test(c.getAttribute('href')));
      if (!a) return null;
      const m = /(?:^|\s)depth-(\d+)(?:\s|$)/.exec(li.className);
      let nesting = 0;
      for (let e = li.parentElement; e; e = e.parentElement) if (e.tagName === 'LI') nesting += 1;
      return { href: a.getAttribute('href'), depth: m ? Number(m[1]) : nesting };
    })
    .filter(Boolean));
}

async function screenshot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

function sha256(buffer) {
  return createHash('sha256').update(buffer).digest('hex');
}

async function expectNotFound(page, path) {
  await open(page, path, 404);
  await assert.doesNotReject(
    page.getByRole('heading', { name: /not found/i }).first().waitFor({ state: 'visible', timeout: 3000 }),
    `${path}: the 404 page has no "Not found" heading: ${await pageText(page, 300)}`,
  );
}

// ---- the runner -----------------------------------------------------------------------

const steps = [];
const step = (name, fn) => steps.push({ name, fn });
const current = { pages: [] };
const state = {};

// ---- the scenarios --------------------------------------------------------------------

step('a visitor without a session is sent to sign in, with the page to come back to', async () => {
  const { page } = await freshPage();
  await open(page, '/projects');
  const u = new URL(page.url());
  assert.equal(u.pathname, '/signin');
  assert.equal(u.searchParams.get('next'), '/projects');
  await screenshot(page, 'signin');
  // Signing in from there lands on the page asked for.
  await page.locator('#login').fill(user.login);
  await page.locator('#password').fill(user.password);
  await submit(page, button(page, 'Sign in'));
  assert.equal(new URL(page.url()).pathname, '/projects', `after signing in: ${page.url()}`);
});

step('a wrong password is refused and starts no session', async () => {
  const { page, context } = await freshPage();
  await open(page, '/signin');
  await page.locator('#login').fill(user.login);
  await page.locator('#password').fill('not-the-password');
  await submit(page, button(page, 'Sign in'));
  assert.equal(new URL(page.url()).pathname, '/signin', `a wrong password led to ${page.url()}`);
  assert.equal(await sessionCookie(context), undefined, 'a wrong password set a session cookie');
  assert.equal(await mainNav(page).count(), 0, 'a wrong password shows the main navigation');
});

for (const who of [admin, user, external, client]) {
  step(`the ${who.role} signs in and out`, async () => {
    const { page, context } = await freshPage();
    await signIn(page, who);
    assert.equal(new URL(page.url()).pathname, '/', `the ${who.role} lands on ${page.url()}`);
    const nav = mainNav(page);
    for (const link of ['My work', 'Projects', 'My profile']) {
      assert.equal(await nav.getByRole('link', { name: link, exact: true }).count(), 1, `no "${link}" in the navigation`);
    }
    const cookie = await sessionCookie(context);
    assert.ok(cookie, 'no __Host-vesper-session cookie after signing in');
    assert.equal(cookie.httpOnly, true, 'the session cookie is not HttpOnly');
    assert.equal(cookie.secure, true, 'the session cookie is not Secure');
    assert.equal(cookie.sameSite, 'Lax', 'the session cookie is not SameSite=Lax');
    assert.equal(cookie.path, '/', 'the session cookie path is not /');
    // My profile is the caller's own.
    await submit(page, nav.getByRole('link', { name: 'My profile', exact: true }));
    assert.equal(new URL(page.url()).pathname, `/users/${who.id}/edit`, `My profile is ${page.url()}`);

    await signOut(page);
    assert.equal(await sessionCookie(context), undefined, 'the session cookie is still set after signing out');
    await open(page, '/');
    assert.equal(new URL(page.url()).pathname, '/signin', 'after signing out / does not ask to sign in');
    // The session is over on the server too: its old id no longer works.
    await context.addCookies([{ name: cookie.name, value: cookie.value, url: `${BASE}/`, secure: true, httpOnly: true, sameSite: 'Lax' }]);
    await open(page, '/');
    assert.equal(new URL(page.url()).pathname, '/signin', 'the session id still works after signing out');
    assert.equal((await api('get', 'projects/getList', {}, cookie.value)).status, 401,
      'the API still accepts the session id after signing out');
  });
}

step('my work lists the open tasks of the caller\'s teams', async () => {
  const { page } = await freshPage();
  await signIn(page, user);
  assert.equal(new URL(page.url()).pathname, '/');
  assert.ok(await page.locator(`main a[href="/tasks/${site.task.id}"]`).count() > 0,
    `the user's work does not list "${site.task.name}", a task of their team: ${await pageText(page, 800)}`);
});

step('an admin adds a project with a team, a task and a sub-task through the forms', async () => {
  const { page } = await freshPage();
  await signIn(page, admin);
  const name = 'Spring campaign';
  await open(page, '/projects/new');
  await page.locator('#project-name').fill(name);
  await page.locator('#project-description').fill('Posters and a landing page');
  await pickTeam(page, 'project', [user.name, client.name]);
  const chosen = await checkedTeam(page, 'project');
  await submit(page, button(page, 'Save'));
  const projectMatch = /^\/projects\/(\d+)$/.exec(new URL(page.url()).pathname);
  assert.ok(projectMatch, `after adding a project the page is ${page.url()}: ${await pageText(page, 500)}`);
  const projectId = Number(projectMatch[1]);
  await page.getByRole('heading', { name }).first().waitFor();
  const project = (await apiGet('projects', projectId)).project;
  assert.equal(project.name, name);
  const team = (project.team ?? []).map(Number).sort((a, b) => a - b);
  // The team is what the form had checked: the two chosen (and whoever the form checked by itself).
  assert.ok(chosen.includes(user.id) && chosen.includes(client.id), `the team chosen in the form: ${chosen}`);
  assert.deepEqual(team, chosen, `the project's team is not the one chosen in the form (${chosen}): ${JSON.stringify(project)}`);
  for (const member of [user.name, client.name]) {
    assert.ok((await pageText(page, 100_000)).includes(member), `the project page does not show team member ${member}`);
  }

  // A task in it.
  await open(page, `/tasks/new?project=${projectId}`);
  await page.locator('#task-name').fill('Design the poster');
  await pickTeam(page, 'task', [user.name]);
  const taskChosen = await checkedTeam(page, 'task');
  await submit(page, button(page, 'Save'));
  const taskMatch = /^\/tasks\/(\d+)$/.exec(new URL(page.url()).pathname);
  assert.ok(taskMatch, `after adding a task the page is ${page.url()}: ${await pageText(page, 500)}`);
  const taskId = Number(taskMatch[1]);
  const task = (await apiGet('tasks', taskId)).task;
  assert.equal(Number(task.projectId), projectId, `the task's project: ${JSON.stringify(task)}`);
  assert.ok(taskChosen.includes(user.id), `the task team chosen in the form: ${taskChosen}`);
  assert.deepEqual((task.team ?? []).map(Number).sort((a, b) => a - b), taskChosen, `the task's team is not the one chosen (${taskChosen}): ${JSON.stringify(task)}`);

  // A sub-task of it.
  await open(page, `/tasks/new?project=${projectId}&parent=${taskId}`);
  await page.locator('#task-name').fill('Pick the fonts');
  await submit(page, button(page, 'Save'));
  const subMatch = /^\/tasks\/(\d+)$/.exec(new URL(page.url()).pathname);
  assert.ok(subMatch, `after adding a sub-task the page is ${page.url()}: ${await pageText(page, 500)}`);
  const subId = Number(subMatch[1]);
  const sub = (await apiGet('tasks', subId)).task;
  assert.equal(Number(sub.parentId), taskId, `the sub-task's parent: ${JSON.stringify(sub)}`);
  assert.equal(Number(sub.projectId), projectId);

  // The task page lists the sub-task; the project page shows it under its parent.
  await open(page, `/tasks/${taskId}`);
  assert.equal(await page.locator(`a[href="/tasks/${subId}"]`).count() > 0, true, 'the task page does not link its sub-task');
  await open(page, `/projects/${projectId}`);
  const rows = await taskTree(page);
  const parentRow = rows.findIndex((r) => r.href === `/tasks/${taskId}`);
  const subRow = rows.findIndex((r) => r.href === `/tasks/${subId}`);
  assert.ok(parentRow >= 0 && subRow >= 0, `the project page does not list both tasks: ${JSON.stringify(rows)}`);
  assert.ok(subRow > parentRow, `the sub-task is listed before its parent: ${JSON.stringify(rows)}`);
  assert.equal(rows[subRow].depth, rows[parentRow].depth + 1, `the sub-task is not one level under its parent: ${JSON.stringify(rows)}`);
  // The page offers the forms it was filled through.
  assert.ok(await page.locator(`a[href="/tasks/new?project=${projectId}"]`).count() > 0, 'the project page has no link to add a task');
  assert.ok(await page.locator(`a[href="/tasks/new?project=${projectId}&parent=${taskId}"]`).count() > 0,
    'the project page has no link to add a sub-task to the task');
  state.created = { projectId, taskId, subId };
});

step('a message and a progress note of 100 are posted, and the task is then done', async () => {
  const { page } = await freshPage();
  await signIn(page, user);
  const taskId = site.task.id;
  await open(page, `/tasks/${taskId}`);
  assert.notEqual((await attribute(page, 'Status')).toLowerCase(), 'done', 'the task is done before its progress note');

  const message = 'The copy is in the shared folder';
  const messageForm = formWith(page, 'Post message');
  await messageForm.locator('[name="activity[text]"]').fill(message);
  await submit(page, button(messageForm, 'Post message'));
  assert.equal(new URL(page.url()).pathname, `/tasks/${taskId}`, `after posting a message the page is ${page.url()}`);
  assert.ok((await pageText(page, 100_000)).includes(message), 'the posted message is not in the task page');
  const posted = (await activitiesOf(taskId)).filter((a) => a.text === message);
  assert.equal(posted.length, 1, 'the message is not stored once');
  assert.equal(posted[0].type, 'msg');
  assert.equal(Number(posted[0].ownerId), user.id);

  const progressForm = formWith(page, 'Post progress');
  await fillOrSelect(progressForm.locator('[name="activity[progress]"]'), '100');
  const note = progressForm.locator('[name="activity[text]"]');
  if (await note.count()) await note.fill('All written');
  await submit(page, button(progressForm, 'Post progress'));
  assert.equal(new URL(page.url()).pathname, `/tasks/${taskId}`, `after posting progress the page is ${page.url()}`);
  assert.equal((await attribute(page, 'Status')).toLowerCase(), 'done', 'the task page does not show the status done');
  const task = (await apiGet('tasks', taskId)).task;
  assert.equal(Number(task.progress), 100, `the task's progress: ${JSON.stringify(task)}`);
  assert.equal(Number(task.status), 30, `the task's status is not done (30): ${JSON.stringify(task)}`);
  const notes = (await activitiesOf(taskId)).filter((a) => a.type === 'progress');
  assert.equal(notes.length, 1, 'the progress note is not stored once');
  assert.equal(Number(notes[0].progress), 100);
});

step('two files are attached at once and one downloads byte-identical', async () => {
  const { page } = await freshPage();
  await signIn(page, user);
  const taskId = site.task.id;
  await open(page, `/tasks/${taskId}`);
  const plan = randomBytes(150_000);
  const notes = Buffer.from('Fonts: Inter, Source Serif.\nColours: #123456.\n', 'utf8');
  const uploadForm = formWith(page, 'Upload');
  const input = uploadForm.locator('input[type=file][name="files"]');
  assert.equal(await input.count(), 1, 'no file input named "files" in the Upload form');
  assert.equal(await input.evaluate((e) => e.multiple), true, 'the file input does not take several files');
  assert.equal(await uploadForm.evaluate((f) => f.enctype), 'multipart/form-data');
  await input.setInputFiles([
    { name: 'plan.bin', mimeType: 'application/octet-stream', buffer: plan },
    { name: 'notes.txt', mimeType: 'text/plain', buffer: notes },
  ]);
  await submit(page, button(uploadForm, 'Upload'));
  assert.equal(new URL(page.url()).pathname, `/tasks/${taskId}`, `after uploading the page is ${page.url()}: ${await pageText(page, 500)}`);

  // One file note holding both.
  const fileNotes = (await activitiesOf(taskId)).filter((a) => a.type === 'file');
  assert.equal(fileNotes.length, 1, `expected one file note, found ${fileNotes.length}`);
  const files = (await apiOk('get', 'activity/getFilesList', { 'filter[activityId]': String(fileNotes[0].id) }, await adminSession())).items;
  assert.deepEqual(files.map((f) => f.name).sort(), ['notes.txt', 'plan.bin']);
  assert.deepEqual(files.map((f) => Number(f.size)).sort((a, b) => a - b), [notes.length, plan.length].sort((a, b) => a - b));

  // The page links both; the binary one downloads as it was sent.
  const planLink = page.getByRole('link', { name: 'plan.bin' });
  assert.equal(await page.getByRole('link', { name: 'notes.txt' }).count(), 1, 'no link to notes.txt');
  assert.equal(await planLink.count(), 1, 'no link to plan.bin');
  const href = await planLink.getAttribute('href');
  assert.match(href, /^\/files\/\d+$/, `the download link is ${href}`);
  const [download] = await Promise.all([page.waitForEvent('download'), planLink.click()]);
  assert.equal(download.suggestedFilename(), 'plan.bin');
  const saved = readFileSync(await download.path());
  assert.equal(saved.length, plan.length, 'the downloaded file has another size');
  assert.equal(sha256(saved), sha256(plan), 'the downloaded file differs from the uploaded one');
  // The text one too, fetched with the browser's session.
  const textHref = await page.getByRole('link', { name: 'notes.txt' }).getAttribute('href');
  const r = await page.request.get(textHref);
  assert.equal(r.status(), 200);
  assert.equal(sha256(await r.body()), sha256(notes), 'notes.txt differs from the uploaded one');
});

step('a client sees neither an activity hidden from clients nor another client\'s project', async () => {
  // The team's user sees both activities: the client's view below is not empty by accident.
  {
    const { page } = await freshPage();
    await signIn(page, user);
    await open(page, `/tasks/${site.task.id}`);
    const text = await pageText(page, 1_000_000);
    assert.ok(text.includes(site.shownActivity.text), 'the user does not see the shown activity');
    assert.ok(text.includes(site.hiddenActivity.text), 'the user does not see the activity hidden from clients');
  }
  const { page } = await freshPage();
  await signIn(page, client);
  await open(page, `/tasks/${site.task.id}`);
  const text = await pageText(page, 1_000_000);
  assert.ok(text.includes(site.shownActivity.text), 'the client does not see the activity shown to clients');
  assert.ok(!text.includes(site.hiddenActivity.text), 'the client sees the activity hidden from clients');
  await expectNotFound(page, `/activities/${site.hiddenActivity.id}/edit`);
  // Nor the files of that activity, nor those of the other client's project; its own, yes.
  assert.ok(text.includes(site.shownActivity.file.name), 'the client does not see the file of the shown activity');
  assert.ok(!text.includes(site.hiddenActivity.file.name), 'the client sees the file of the hidden activity');
  assert.equal((await page.request.get(`/files/${site.shownActivity.file.id}`)).status(), 200, 'the client cannot download a file it sees');
  assert.equal((await page.request.get(`/files/${site.hiddenActivity.file.id}`)).status(), 404, 'the client downloads the file of a hidden activity');
  assert.equal((await page.request.get(`/files/${shop.file.id}`)).status(), 404, 'the client downloads a file of the other client\'s project');

  await open(page, '/projects');
  const list = await pageText(page, 1_000_000);
  assert.ok(list.includes(site.name), `the client's projects do not list "${site.name}"`);
  assert.ok(!list.includes(shop.name), `the client's projects list the other client's "${shop.name}"`);
  assert.ok(!list.includes(internal.name), `the client's projects list "${internal.name}"`);
  await expectNotFound(page, `/projects/${shop.id}`);
  await expectNotFound(page, `/tasks/${shop.task.id}`);
  // The other client does see it.
  const other = await freshPage();
  await signIn(other.page, client2);
  await open(other.page, `/projects/${shop.id}`);
});

step('an external user cannot open a project outside its teams', async () => {
  const { page } = await freshPage();
  await signIn(page, external);
  await open(page, `/projects/${site.id}`);
  await expectNotFound(page, `/projects/${internal.id}`);
  await expectNotFound(page, `/tasks/${internal.task.id}`);
  await open(page, '/projects');
  const list = await pageText(page, 1_000_000);
  assert.ok(list.includes(site.name), `the external's projects do not list "${site.name}"`);
  assert.ok(!list.includes(internal.name), `the external's projects list "${internal.name}"`);
});

step('a form without its anti-forgery token is refused with 403 and changes nothing', async () => {
  const { page } = await freshPage();
  await signIn(page, admin);
  const before = (await allProjects()).length;

  // The add-project form with its token taken out.
  await open(page, '/projects/new');
  await page.locator('#project-name').fill('Forged without a token');
  const form = formWith(page, 'Save');
  assert.equal(await form.locator('input[name="csrf"]').count(), 1, 'the add-project form carries no csrf field');
  await form.locator('input[name="csrf"]').evaluate((e) => e.remove());
  assert.equal(await submitStatus(page, button(form, 'Save'), /^\/projects\/new$/), 403, 'a form without its token was not refused with 403');
  assert.equal(await page.getByRole('heading', { name: 'Not allowed' }).count(), 1, `the refusal is not the "Not allowed" page: ${await pageText(page, 300)}`);

  // With a token that is not the session's.
  await open(page, '/projects/new');
  await page.locator('#project-name').fill('Forged with a wrong token');
  await formWith(page, 'Save').locator('input[name="csrf"]').evaluate((e) => { e.value = 'A'.repeat(e.value.length || 43); });
  assert.equal(await submitStatus(page, button(formWith(page, 'Save'), 'Save'), /^\/projects\/new$/), 403, 'a form with a wrong token was not refused with 403');

  // A post from elsewhere: the browser's cookie, no token.
  const forged = await page.request.post(`/tasks/${internal.task.id}/activities`, {
    form: { 'activity[type]': 'msg', 'activity[text]': 'Forged message' },
    maxRedirects: 0,
  });
  assert.equal(forged.status(), 403, 'a message posted without a token was not refused with 403');

  const projects = await allProjects();
  assert.equal(projects.length, before, 'a refused form added a project');
  assert.ok(!projects.some((p) => p.name.startsWith('Forged')), 'a forged project exists');
  assert.ok(!(await activitiesOf(internal.task.id)).some((a) => a.text === 'Forged message'), 'a forged message exists');

  // The sign-in form without its token starts no session.
  const fresh = await freshPage();
  await open(fresh.page, '/signin');
  await fresh.page.locator('#login').fill(user.login);
  await fresh.page.locator('#password').fill(user.password);
  await formWith(fresh.page, 'Sign in').locator('input[name="csrf"]').evaluate((e) => e.remove());
  assert.equal(await submitStatus(fresh.page, button(fresh.page, 'Sign in'), /^\/signin$/), 403, 'the sign-in form without its token was not refused with 403');
  assert.equal(await sessionCookie(fresh.context), undefined, 'the sign-in form without its token started a session');
});

step('a validation error is shown beside its field, with what was typed kept', async () => {
  const { page } = await freshPage();
  await signIn(page, admin);
  const before = (await allProjects()).length;
  await open(page, '/projects/new');
  const description = 'A description that must survive the error';
  await page.locator('#project-description').fill(description);
  await page.locator('#project-name').fill('');
  // The server's check, not the browser's: no client-side validation.
  await formWith(page, 'Save').evaluate((f) => { f.noValidate = true; });
  await submit(page, button(page, 'Save'));
  const error = page.locator('#error-project-name');
  assert.ok(await error.isVisible(), `no visible #error-project-name: ${await pageText(page, 800)}`);
  assert.ok((await error.innerText()).trim().length > 0, 'the field error is empty');
  assert.ok(await error.evaluate((e) => e.classList.contains('field-error')), 'the error has no class field-error');
  const name = page.locator('#project-name');
  assert.equal(await name.getAttribute('aria-invalid'), 'true');
  assert.ok((await name.getAttribute('aria-describedby') ?? '').split(/\s+/).includes('error-project-name'),
    'the name field is not described by its error');
  assert.equal(await name.evaluate((e) => e.nextElementSibling?.id), 'error-project-name', 'the error is not right after its field');
  assert.equal(await page.locator('#project-description').inputValue(), description, 'the typed description was lost');
  assert.equal((await allProjects()).length, before, 'a project was added despite the error');
  await screenshot(page, 'project-new-error');
});

step('a removal asks first: declined, nothing is removed; accepted, the file is gone', async () => {
  const { page } = await freshPage();
  await signIn(page, admin);
  const taskId = internal.task.id;
  await open(page, `/tasks/${taskId}`);
  const uploadForm = formWith(page, 'Upload');
  await uploadForm.locator('input[type=file][name="files"]').setInputFiles([
    { name: 'scratch.txt', mimeType: 'text/plain', buffer: Buffer.from('to be removed\n') },
  ]);
  await submit(page, button(uploadForm, 'Upload'));
  const fileIds = async () => (await apiOk('get', 'activity/getFilesList', { 'filter[taskId]': String(taskId) }, await adminSession())).items
    .filter((f) => f.name === 'scratch.txt').map(idOf);
  const [fileId] = await fileIds();
  assert.ok(fileId, 'the file to remove was not uploaded');
  const removeForm = page.locator(`form[action="/files/${fileId}/remove"]`);
  assert.equal(await removeForm.count(), 1, 'the task page has no remove form for the file');
  const dialogs = [];
  page.once('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  // The button says "Remove" (with the file's name for screen readers).
  const removeButton = removeForm.getByRole('button', { name: /^Remove\b/ });
  await removeButton.click();
  await page.waitForTimeout(500);
  assert.equal(dialogs.length, 1, 'removing a file did not ask first');
  assert.equal(new URL(page.url()).pathname, `/tasks/${taskId}`);
  assert.deepEqual(await fileIds(), [fileId], 'the file was removed although the question was declined');
  page.once('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
  await submit(page, removeButton);
  assert.equal(dialogs.length, 2);
  assert.deepEqual(await fileIds(), [], 'the file is still there after the removal was accepted');
  assert.equal(await page.locator(`a[href="/files/${fileId}"]`).count(), 0, 'the page still links the removed file');
  await open(page, `/files/${fileId}`, 404);
});

step('dates are shown in the viewer\'s time zone by the script', async () => {
  const { page } = await freshPage();
  await signIn(page, admin);
  const path = `/tasks/${site.task.id}`;
  await open(page, path);
  const served = await (await page.request.get(path)).text();
  const m = /<time datetime="([^"]+)">([^<]*)<\/time>/.exec(served);
  assert.ok(m, 'the task page has no <time datetime> element');
  const [, datetime, serverText] = m;
  assert.match(datetime, /Z$/, `the datetime ${datetime} is not in UTC`);
  const shown = (await page.locator(`time[datetime="${datetime}"]`).first().textContent()).trim();
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', { timeZone: 'Europe/Paris', hour: 'numeric', minute: '2-digit', hourCycle: 'h23' })
    .formatToParts(new Date(datetime)).map((p) => [p.type, p.value]));
  const h24 = Number(parts.hour);
  const candidates = [`${h24}:${parts.minute}`, `${String(h24).padStart(2, '0')}:${parts.minute}`, `${h24 % 12 || 12}:${parts.minute}`];
  assert.ok(candidates.some((c) => shown.includes(c)),
    `the time ${datetime} is shown as "${shown}" (the server wrote "${serverText.trim()}"), not in Paris time (${candidates[0]})`);
});

step('pages carry the security headers and their assets are hashed and immutable', async () => {
  const { page } = await freshPage();
  const expected = {
    'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    'x-frame-options': 'DENY',
    'referrer-policy': 'same-origin',
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-store',
  };
  const checkHeaders = (path, r) => {
    const h = r.headers();
    for (const [name, value] of Object.entries(expected)) {
      assert.equal(h[name], value, `${path}: ${name}`);
    }
  };
  checkHeaders('/signin', await open(page, '/signin'));
  await signIn(page, admin);
  for (const path of ['/', '/projects', `/tasks/${site.task.id}`]) checkHeaders(path, await open(page, path));
  checkHeaders('a 404 page', await open(page, '/projects/999999', 404));
  await open(page, '/');
  const css = await page.locator('link[rel=stylesheet]').getAttribute('href');
  const js = await page.locator('script[src]').getAttribute('src');
  assert.match(css, /^\/assets\/vesper\.[A-Za-z0-9_-]+\.css$/, `the stylesheet is at ${css}`);
  assert.match(js, /^\/assets\/vesper\.[A-Za-z0-9_-]+\.js$/, `the script is at ${js}`);
  for (const asset of [css, js]) {
    const r = await page.request.get(asset);
    assert.equal(r.status(), 200, asset);
    assert.equal(r.headers()['cache-control'], 'public, max-age=31536000, immutable', `${asset}: cache-control`);
    const etag = r.headers().etag;
    assert.ok(etag, `${asset}: no ETag`);
    const again = await page.request.get(asset, { headers: { 'If-None-Match': etag } });
    assert.equal(again.status(), 304, `${asset}: a request with its ETag is not answered 304`);
  }
});

step('actions are offered only where the policy allows them, and refused regardless', async () => {
  const taskId = site.task.id;
  // The client: may post a message, neither edit the task nor post progress.
  const { page } = await freshPage();
  await signIn(page, client);
  await open(page, `/projects/${site.id}`);
  assert.equal(await page.locator(`a[href="/projects/${site.id}/edit"]`).count(), 0, 'the client is offered to edit the project');
  assert.equal(await page.locator(`a[href^="/tasks/new"]`).count(), 0, 'the client is offered to add a task');
  await open(page, `/tasks/${taskId}`);
  assert.equal(await page.locator(`a[href="/tasks/${taskId}/edit"]`).count(), 0, 'the client is offered to edit the task');
  assert.equal(await button(page, 'Post progress').count(), 0, 'the client is offered to post progress');
  assert.equal(await button(page, 'Post message').count(), 1, 'the client is not offered to post a message');
  const before = (await activitiesOf(taskId)).length;
  // A progress note posted anyway, with the session's own token: the handler refuses it.
  const csrf = await formWith(page, 'Post message').locator('input[name="csrf"]').inputValue();
  const r = await page.request.post(`/tasks/${taskId}/activities`, {
    form: { csrf, 'activity[type]': 'progress', 'activity[progress]': '50' },
    maxRedirects: 0,
  });
  assert.equal(r.status(), 403, `a client's progress note was answered ${r.status()}`);
  const edit = await page.request.get(`/tasks/${taskId}/edit`, { maxRedirects: 0 });
  assert.equal(edit.status(), 403, `the client's task edit page was answered ${edit.status()}`);
  assert.equal((await activitiesOf(taskId)).length, before, 'the refused progress note was stored');

  // The external in the task's team may edit it and post progress.
  const ext = await freshPage();
  await signIn(ext.page, external);
  await open(ext.page, `/tasks/${taskId}`);
  assert.equal(await ext.page.locator(`a[href="/tasks/${taskId}/edit"]`).count() > 0, true, 'the external in the task team is not offered to edit it');
  assert.equal(await button(ext.page, 'Post progress').count(), 1, 'the external in the task team is not offered to post progress');
});

for (const kind of ['project', 'task']) {
  step(`a ${kind}'s edit form does not overwrite a change made meanwhile`, async () => {
    const sid = await adminSession();
    const service = `${kind}s`;
    const attrs = { [`${kind}[name]`]: 'Versioned', [`${kind}[description]`]: 'First words' };
    if (kind === 'task') attrs['task[projectId]'] = String(internal.id);
    const id = idOf((await apiOk('post', `${service}/add`, attrs, sid))[kind]);
    const { page } = await freshPage();
    await signIn(page, admin);
    await open(page, `/${service}/${id}/edit`);
    assert.equal(await page.locator(`#${kind}-name`).inputValue(), 'Versioned');
    // Someone else changes it meanwhile.
    await apiOk('post', `${service}/update`, { [`${kind}[id]`]: String(id), [`${kind}[description]`]: 'Changed elsewhere' }, sid);
    await page.locator(`#${kind}-name`).fill('Renamed in the browser');
    await submit(page, button(page, 'Save'));
    const now = (await apiGet(service, id))[kind];
    assert.equal(now.description, 'Changed elsewhere', 'the change made meanwhile was overwritten');
    assert.equal(now.name, 'Versioned', 'the stale form was saved over the change made meanwhile');
    const alert = page.locator('[role=alert]');
    assert.ok(await alert.count() > 0, `the form does not say it was changed meanwhile: ${await pageText(page, 500)}`);
    assert.match(await alert.first().innerText(), /changed/i);
    // The form comes back with the current values (docs/web.md), so that saving it again
    // does not put back what the other person changed.
    const shown = await page.locator(`#${kind}-description`).inputValue();
    await submit(page, button(page, 'Save'));
    const after = (await apiGet(service, id))[kind];
    const problems = [];
    if (shown !== 'Changed elsewhere') {
      problems.push(`after the conflict the form shows the stale description "${shown}", not the current "Changed elsewhere"`);
    }
    if (after.description !== 'Changed elsewhere') {
      problems.push(`saving the returned form again overwrote the change made meanwhile: the description is now "${after.description}"`);
    }
    assert.deepEqual(problems, [], problems.join('; '));
  });
}

step('signing in never leads to another site', async () => {
  for (const next of ['https://evil.example/x', '//evil.example/x', '/\\evil.example/x', '/\t/evil.example/x', 'javascript:alert(1)']) {
    const { page } = await freshPage();
    await open(page, `/signin?next=${encodeURIComponent(next)}`);
    await page.locator('#login').fill(user.login);
    await page.locator('#password').fill(user.password);
    await submit(page, button(page, 'Sign in'));
    assert.equal(new URL(page.url()).origin, new URL(BASE).origin, `next=${next} led to ${page.url()}`);
    await page.context().close();
  }
});

step('a client sees only itself and its team mates on the users page', async () => {
  const { page } = await freshPage();
  await signIn(page, client);
  await open(page, '/users');
  const text = await pageText(page, 1_000_000);
  for (const name of [client.name, user.name, external.name]) assert.ok(text.includes(name), `the client does not see ${name}`);
  assert.ok(!text.includes(client2.name) && !text.includes(client2.login), 'the client sees the other client');
  assert.equal(await page.locator('a[href="/users/new"]').count(), 0, 'the client is offered to add users');
  assert.equal(await page.locator(`a[href="/users/${user.id}/edit"]`).count(), 0, 'the client is offered to edit another user');
});

step('every control of the pages has a label of its own and every id is unique', async () => {
  const { page } = await freshPage();
  const paths = ['/signin'];
  const problems = [];
  const check = async (path) => {
    await open(page, path);
    const found = await page.evaluate(() => {
      const out = [];
      const seen = new Map();
      for (const e of document.querySelectorAll('[id]')) seen.set(e.id, (seen.get(e.id) ?? 0) + 1);
      for (const [id, n] of seen) if (n > 1) out.push(`id "${id}" is used ${n} times`);
      for (const c of document.querySelectorAll('input, select, textarea')) {
        if (c.type === 'hidden' || c.type === 'submit' || c.type === 'button') continue;
        const labelled = c.id && [...c.labels].some((l) => l.htmlFor === c.id);
        if (!labelled) out.push(`the ${c.tagName.toLowerCase()} "${c.name}"${c.id ? ` #${c.id}` : ''} has no <label for> of its own`);
      }
      return out;
    });
    problems.push(...found.map((f) => `${path}: ${f}`));
  };
  for (const path of paths) await check(path);
  await signIn(page, admin);
  for (const path of [
    '/', '/projects', '/projects/new', `/projects/${site.id}`, `/projects/${site.id}/edit`,
    `/tasks/new?project=${site.id}`, `/tasks/${site.task.id}`, `/tasks/${site.task.id}/edit`,
    `/activities/${site.shownActivity.id}/edit`, '/users', '/users/new', `/users/${user.id}/edit`,
    '/groups', '/groups/new', `/groups/${fx.groups.websites.id}/edit`,
  ]) await check(path);
  assert.deepEqual(problems, [], `controls without their own label or duplicate ids:\n    ${problems.join('\n    ')}`);
});

step('screenshots of the main pages, wide and at 375 px', async () => {
  const pages = [
    ['my-work', '/'],
    ['projects', '/projects'],
    ['project', `/projects/${site.id}`],
    ['task', `/tasks/${site.task.id}`],
    ['users', '/users'],
    ['groups', '/groups'],
  ];
  for (const width of [1280, 375]) {
    const suffix = width === 1280 ? '' : `-${width}`;
    const { page } = await freshPage(width);
    await open(page, '/signin');
    await screenshot(page, `signin${suffix}`);
    await signIn(page, admin);
    for (const [name, path] of pages) {
      const r = await open(page, path);
      const csp = r.headers()['content-security-policy'] ?? '';
      assert.match(csp, /default-src 'none'/, `${path}: no Content-Security-Policy`);
      await screenshot(page, `${name}${suffix}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 0) console.log(`  note: ${path} is ${overflow}px wider than the ${width}px window`);
    }
    assert.deepEqual(page.problems, [], 'the pages logged errors (a blocked inline script or style?)');
  }
});

// ---- run them -------------------------------------------------------------------------

const filter = process.argv[2] ?? process.env.VESPER_BROWSER_FILTER;
let passed = 0;
let failed = 0;
const failures = [];
for (const s of steps) {
  if (filter && !s.name.includes(filter)) continue;
  current.pages = [];
  const started = Date.now();
  let timer;
  try {
    await Promise.race([
      s.fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${STEP_TIMEOUT_MS / 1000}s`)), STEP_TIMEOUT_MS);
      }),
    ]);
    passed += 1;
    console.log(`ok - ${s.name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed += 1;
    failures.push(s.name);
    console.log(`not ok - ${s.name}`);
    console.log(`  ${String(e.stack ?? e).split('\n').join('\n  ')}`);
    const page = current.pages.at(-1);
    if (page && !page.isClosed()) {
      const file = `failed-${s.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.png`;
      try {
        await page.screenshot({ path: join(SHOTS, file), fullPage: true, timeout: 5000 });
        console.log(`  at ${page.url()} (screenshot ${file})`);
        console.log(`  page text: ${await pageText(page, 1500)}`);
      } catch {}
    }
  } finally {
    clearTimeout(timer);
    for (const p of current.pages) await p.context().close().catch(() => {});
  }
}
await browser.close();
await apiContext.dispose();
writeFileSync(join(SHOTS, 'result.txt'), `${passed} passed, ${failed} failed\n${failures.join('\n')}\n`);
if (failures.length) console.log(`failed: ${failures.join('; ')}`);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
