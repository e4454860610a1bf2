<?php
// This file is part of the zmsync project, the local_student_dashboard Moodle plugin.
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

/**
 * Plain-PHP tests of the plugin's pure classes, run without a Moodle (php tests-plain/run.php).
 *
 * Reads the shared vectors in fixtures/ (grade conversion, signatures). Prints one line per failure and
 * a closing "N passed, M failed"; exits 1 on any failure.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

use local_student_dashboard\local\event_payload;
use local_student_dashboard\local\finance_summary;
use local_student_dashboard\local\grade_converter;
use local_student_dashboard\local\money;
use local_student_dashboard\local\row_types;
use local_student_dashboard\local\row_validator;
use local_student_dashboard\local\signer;

error_reporting(E_ALL);
ini_set('display_errors', '1');
set_error_handler(function (int $severity, string $message, string $file, int $line): bool {
    throw new ErrorException($message, 0, $severity, $file, $line);
});

$plugindir = dirname(__DIR__) . '/local/student_dashboard';
$fixturesdir = getenv('ZMSYNC_FIXTURES') ?: dirname(__DIR__, 2) . '/fixtures';
foreach (['grade_converter', 'signer', 'money', 'finance_summary', 'row_types', 'row_validator', 'event_payload',
        'formatter', 'sync_clock'] as $class) {
    require_once($plugindir . '/classes/local/' . $class . '.php');
}
// The dashboard page's classes, with stand-ins for the Moodle functions they call.
require_once(__DIR__ . '/moodle_stubs.php');
require_once(__DIR__ . '/mustache_lite.php');
require_once($plugindir . '/classes/output/dashboard.php');

$passed = 0;
$failed = 0;

/**
 * Record one assertion.
 *
 * @param bool $ok Whether it held.
 * @param string $what What was checked.
 * @param mixed $expected The expected value (shown on failure).
 * @param mixed $actual The actual value (shown on failure).
 */
function check(bool $ok, string $what, $expected = null, $actual = null): void {
    global $passed, $failed;
    if ($ok) {
        $passed++;
        return;
    }
    $failed++;
    echo 'FAIL: ' . $what . ' (expected ' . var_export($expected, true) . ', got ' . var_export($actual, true) . ")\n";
}

/**
 * Assert equality (strict).
 *
 * @param mixed $expected
 * @param mixed $actual
 * @param string $what
 */
function same($expected, $actual, string $what): void {
    check($expected === $actual, $what, $expected, $actual);
}

/**
 * Assert that a callable throws.
 *
 * @param callable $fn
 * @param string $what
 */
function throws(callable $fn, string $what): void {
    try {
        $fn();
        check(false, $what . ' throws', 'an exception', 'none');
    } catch (Throwable $e) {
        check(true, $what);
    }
}

/**
 * Read a JSON fixture.
 *
 * @param string $path
 * @return array
 */
function fixture(string $path): array {
    if (!is_readable($path)) {
        check(false, 'fixture readable: ' . $path, 'readable', 'missing');
        return [];
    }
    return json_decode(file_get_contents($path), true, 512, JSON_THROW_ON_ERROR);
}

// Grade conversion: every shared vector.
$vectors = fixture($fixturesdir . '/grade-conversion.json');
check(count($vectors['cases'] ?? []) >= 30, 'grade-conversion.json has its cases', '>= 30', count($vectors['cases'] ?? []));
foreach ($vectors['cases'] ?? [] as $case) {
    $thresholds = $case['thresholds'] ?? $vectors['thresholds'];
    $converter = new grade_converter($thresholds['distinction'], $thresholds['merit'], $thresholds['pass']);
    $actual = $converter->convert(
        $case['finalgrade'] === null ? null : (float) $case['finalgrade'],
        (float) $case['grademin'],
        (float) $case['grademax'],
        $case['scaleitem']
    );
    same($case['expected'], $actual, 'grade conversion: ' . $case['description']);
}
$default = new grade_converter();
same('Merit', $default->convert(65.0, 0.0, 100.0), 'default thresholds are 70/60/40');
same(70.0, grade_converter::percent(21.0, 0.0, 30.0), 'percent of 21/30');
same(null, grade_converter::percent(null, 0.0, 100.0), 'percent of no grade');
same(['Refer', 'Pass', 'Merit', 'Distinction'], grade_converter::levels(), 'levels lowest first');
throws(fn() => new grade_converter(50.0, 60.0, 40.0), 'unordered thresholds are refused');

// Signing: every shared vector.
$signing = fixture($fixturesdir . '/signing-vectors.json');
check(count($signing['vectors'] ?? []) >= 5, 'signing-vectors.json has its vectors', '>= 5', count($signing['vectors'] ?? []));
foreach ($signing['vectors'] ?? [] as $vector) {
    $s = new signer($vector['key']);
    same($vector['signature'], $s->sign($vector['body']), 'signature: ' . $vector['description']);
    check($s->verify($vector['body'], $vector['signature']), 'verify: ' . $vector['description']);
    check($s->verify($vector['body'], 'sha256=' . $vector['signature']), 'verify with sha256= prefix: ' . $vector['description']);
    check(!$s->verify($vector['body'] . ' ', $vector['signature']), 'a changed body fails: ' . $vector['description']);
}
$s = new signer('example-key-not-a-secret');
same('X-Moodle-Signature: ' . $s->sign('{}'), $s->header('{}'), 'header line');
check(!$s->verify('{}', ''), 'an empty signature fails');
throws(fn() => new signer(''), 'an empty secret is refused');

// Money.
same(1000000, money::parse('10000'), 'parse whole');
same(1950, money::parse('19.5'), 'parse one place');
same(5, money::parse('0.05'), 'parse cents');
same(null, money::parse('1,000.00'), 'no thousands separator');
same(null, money::parse('-5'), 'no sign');
same(null, money::parse('1.234'), 'at most two places');
same(null, money::parse(' 5'), 'no padding');
same(null, money::parse('5.'), 'no bare dot');
same(null, money::parse(''), 'empty is not money');
same(null, money::parse("5\n"), 'no trailing newline');
same('10000.00', money::format(1000000), 'format whole');
same('0.05', money::format(5), 'format cents');
same('-0.50', money::format(-50), 'format negative');
same('20.00', money::normalise('20'), 'normalise integer');
same('20.00', money::normalise('20.00000'), 'normalise database value');
same('19.51', money::normalise('19.505'), 'normalise rounds half up');
same(null, money::normalise(null), 'normalise null');
same(2000, money::parse_percent('20'), 'percent');
same(10000, money::parse_percent('100'), 'percent 100');
same(null, money::parse_percent('100.01'), 'percent above 100');
same(200000, money::percentage_of(1000000, 2000), '20% of 10000');
same(1, money::percentage_of(5, 2500), '25% of 0.05 rounds half up to 0.01');
same(0, money::percentage_of(1, 4999), 'just under half a cent rounds down');

// Finance summary: the example student ($10,000, 20% scholarship, three $2,000 payments paid, one due).
$registrations = [
    ['zohoid' => 'R1', 'totalfee' => '10000.00', 'scholarshippercent' => '20.00', 'currency' => 'USD'],
];
$payments = [
    ['registrationzohoid' => 'R1', 'amount' => '2000.00', 'status' => 'Paid'],
    ['registrationzohoid' => 'R1', 'amount' => '2000', 'status' => 'Paid'],
    ['registrationzohoid' => '', 'amount' => '2000.00', 'status' => 'Paid'],
    ['registrationzohoid' => 'R1', 'amount' => '2000.00', 'status' => 'Due'],
];
$totals = (new finance_summary($registrations, $payments))->totals();
same(1, count($totals), 'one currency');
same(['currency' => 'USD', 'totalfee' => 1000000, 'scholarship' => 200000, 'paid' => 600000, 'due' => 200000,
    'net' => 800000, 'remaining' => 200000, 'scholarshippercent' => 2000], $totals[0], 'domain example totals');
$summary = new finance_summary([
    ['zohoid' => 'A', 'totalfee' => '1000', 'scholarshippercent' => '10', 'currency' => 'GBP'],
    ['zohoid' => 'B', 'totalfee' => '3000', 'scholarshippercent' => '0', 'currency' => 'GBP'],
    ['zohoid' => 'C', 'totalfee' => '500', 'scholarshippercent' => '50', 'currency' => 'EUR'],
], [
    ['registrationzohoid' => 'C', 'amount' => '100', 'status' => 'Paid'],
    ['registrationzohoid' => 'A', 'amount' => '900', 'status' => 'Paid'],
    ['registrationzohoid' => 'X', 'amount' => '1', 'status' => 'Paid'],
    ['registrationzohoid' => 'B', 'amount' => '50', 'status' => 'Overdue'],
]);
$totals = $summary->totals();
same(['GBP', 'EUR'], $summary->currencies(), 'currencies in first-seen order');
same(400000, $totals[0]['totalfee'], 'GBP total');
same(10000, $totals[0]['scholarship'], 'GBP scholarship');
same(250, $totals[0]['scholarshippercent'], 'GBP effective scholarship 2.5%');
same(90000, $totals[0]['paid'], 'GBP paid (unknown registration ignored with two currencies)');
same(5000, $totals[0]['due'], 'GBP overdue counts as due');
same(300000, $totals[0]['remaining'], 'GBP remaining');
same(15000, $totals[1]['remaining'], 'EUR remaining');
same(null, $summary->currency_of_payment(['registrationzohoid' => 'X']), 'unknown registration, two currencies');
same([], (new finance_summary([], $payments))->totals(), 'no registrations, no summary');
$over = (new finance_summary($registrations, [['registrationzohoid' => 'R1', 'amount' => '9000', 'status' => 'Paid']]))->totals();
same(-100000, $over[0]['remaining'], 'overpayment gives a negative remaining');

// Row types and validation.
same(['registrations', 'payments', 'units', 'grades'], row_types::types(), 'row types');
same('local_student_dashboard_reg', row_types::table('registrations'), 'registrations table');
same('payment', row_types::item('payments'), 'payments item');
check(!row_types::has_user('units'), 'units have no user');
check(row_types::has_user('grades'), 'grades have a user');
foreach (row_types::types() as $type) {
    check(strlen(row_types::table($type)) <= 53, $type . ' table name fits');
    foreach (row_types::fields($type) as $name => $field) {
        check(preg_match('/^[a-z]+$/', $field['column']) === 1, "$type.$name column has no underscore", '[a-z]+', $field['column']);
    }
}
throws(fn() => row_types::table('students'), 'unknown row type');
same(9, count(row_types::fields('registrations')), 'registrations vars per row');
same(9, count(row_types::fields('payments')), 'payments vars per row');
same(6, count(row_types::fields('units')), 'units vars per row');
same(8, count(row_types::fields('grades')), 'grades vars per row');

$users = [34 => true, 35 => true];
$exists = fn(int $userid): bool => isset($users[$userid]);
$good = ['zoho_id' => '5847596000020001', 'userid' => 34, 'student_zoho_id' => '5847596000012345',
    'program' => 'BTEC Level 5 Diploma in IT', 'registration_date' => '2025-09-01', 'total_fee' => '10000',
    'scholarship_percent' => '20', 'currency' => 'USD', 'status' => 'Active'];
$v = new row_validator('registrations', $exists);
$result = $v->validate($good);
same(['zohoid' => '5847596000020001', 'userid' => 34, 'studentzohoid' => '5847596000012345',
    'program' => 'BTEC Level 5 Diploma in IT', 'registrationdate' => '2025-09-01', 'totalfee' => '10000.00',
    'scholarshippercent' => '20.00', 'currency' => 'USD', 'status' => 'Active'], $result['record'] ?? null, 'valid registration');
same('duplicatezohoid', $v->validate($good)['warningcode'] ?? null, 'a second row with the same zoho_id');
$cases = [
    ['invalidzohoid', ['zoho_id' => '']],
    ['invalidzohoid', ['zoho_id' => str_repeat('9', 101)]],
    ['invalidzohoid', ['student_zoho_id' => '']],
    ['invaliduserid', ['userid' => 999]],
    ['invaliduserid', ['userid' => 0]],
    ['invaliddate', ['registration_date' => '2026-02-30']],
    ['invaliddate', ['registration_date' => '2026-1-5']],
    ['invaliddate', ['registration_date' => '20260105']],
    ['invalidamount', ['total_fee' => '10,000']],
    ['invalidamount', ['total_fee' => '1.999']],
    ['invalidpercent', ['scholarship_percent' => '100.5']],
    ['invalidpercent', ['scholarship_percent' => 'ten']],
    ['invalidcurrency', ['currency' => 'usd']],
    ['invalidcurrency', ['currency' => 'USDT']],
    ['invalidvalue', ['program' => str_repeat('x', 256)]],
    ['invaliduserid', ['userid' => 999, 'registration_date' => 'bad']],
    ['invaliddate', ['registration_date' => 'bad', 'total_fee' => 'bad']],
];
foreach ($cases as $i => [$code, $change]) {
    $row = array_merge($good, $change, ['zoho_id' => $change['zoho_id'] ?? 'Z' . $i]);
    $result = (new row_validator('registrations', $exists))->validate($row);
    same($code, $result['warningcode'] ?? null, 'registration check ' . $i . ': ' . json_encode($change));
}
$minimal = $good;
unset($minimal['registration_date'], $minimal['scholarship_percent'], $minimal['status']);
$result = (new row_validator('registrations', $exists))->validate($minimal);
check(array_key_exists('registrationdate', $result['record']) && $result['record']['registrationdate'] === null,
    'an omitted date is null');
same('0.00', $result['record']['scholarshippercent'] ?? null, 'an omitted percent defaults to 0');
same('', $result['record']['status'] ?? null, 'an omitted status is empty');
same(null, (new row_validator('registrations', $exists))->validate(['registration_date' => ''] + $good)['record']['registrationdate'],
    'an empty date is not set');

$payment = ['zoho_id' => 'P1', 'userid' => 35, 'student_zoho_id' => 'S1', 'amount' => '2000', 'status' => 'Paid'];
$result = (new row_validator('payments', $exists))->validate($payment);
same(['zohoid' => 'P1', 'userid' => 35, 'studentzohoid' => 'S1', 'registrationzohoid' => '', 'amount' => '2000.00',
    'paymentdate' => null, 'duedate' => null, 'status' => 'Paid', 'paymentmethod' => ''], $result['record'] ?? null, 'minimal payment');
same('invalidstatus', (new row_validator('payments', $exists))->validate(['status' => 'paid'] + $payment)['warningcode'] ?? null,
    'payment status is case-sensitive');
same('invalidstatus', (new row_validator('payments', $exists))->validate(['status' => 'Refunded'] + $payment)['warningcode'] ?? null,
    'unknown payment status');
same('invalidzohoid', (new row_validator('payments', $exists))->validate(['registration_zoho_id' => str_repeat('1', 101)] + $payment)['warningcode'] ?? null,
    'an optional Zoho id that is too long');

$unit = ['zoho_id' => 'U1', 'unit_code' => 'Unit 1', 'unit_name' => 'Programming'];
$result = (new row_validator('units', fn() => false))->validate($unit);
same(['zohoid' => 'U1', 'unitcode' => 'Unit 1', 'unitname' => 'Programming', 'unitlevel' => '', 'credits' => 0, 'criteria' => ''],
    $result['record'] ?? null, 'units need no user');
same('invalidvalue', (new row_validator('units', fn() => false))->validate(['credits' => 1000] + $unit)['warningcode'] ?? null,
    'credits above 999');
same('invalidvalue', (new row_validator('units', fn() => false))->validate(['criteria' => str_repeat('é', 40000)] + $unit)['warningcode'] ?? null,
    'criteria are limited in bytes');

$grade = ['zoho_id' => 'G1', 'userid' => 34, 'student_zoho_id' => 'S1', 'grade' => 'Merit', 'moodle_grade' => 65.123456];
$result = (new row_validator('grades', $exists))->validate($grade);
same(65.12346, $result['record']['moodlegrade'] ?? null, 'moodle grade kept to 5 places');
same(null, (new row_validator('grades', $exists))->validate(['moodle_grade' => null] + $grade)['record']['moodlegrade'], 'no moodle grade');
same('invalidgrade', (new row_validator('grades', $exists))->validate(['grade' => 'merit'] + $grade)['warningcode'] ?? null,
    'grade is case-sensitive');
same('invalidgrade', (new row_validator('grades', $exists))->validate(['grade' => 'Fail'] + $grade)['warningcode'] ?? null,
    'Fail is not a BTEC level');
check(row_validator::is_date('2024-02-29'), 'leap day');
check(!row_validator::is_date('2025-02-29'), 'not a leap year');

// Event payloads: exactly the shapes of docs/plugin-contract.md section 9, signed bytes stable.
$body = event_payload::encode(event_payload::enrolment('moodle-1b4e28ba-2fa1-41d2-883f-0016d3cca427',
    '\\core\\event\\user_enrolment_created', 12, 34, 1767261600));
same('{"eventid":"moodle-1b4e28ba-2fa1-41d2-883f-0016d3cca427","eventname":"\\\\core\\\\event\\\\user_enrolment_created",'
    . '"courseid":12,"userid":34,"timecreated":1767261600}', $body, 'enrolment body');
same($signing['vectors'][0]['body'] ?? null, $body, 'enrolment body equals the first signing vector');
$body = event_payload::encode(event_payload::grade('moodle-6fa459ea-ee8a-4ca4-894e-db77e160355e', 4711, 34, 12, 85.5));
same($signing['vectors'][1]['body'] ?? null, $body, 'grade body equals the second signing vector');
$body = event_payload::encode(event_payload::grade('moodle-00000000-0000-4000-8000-000000000001', 4712, 35, 12, null));
same($signing['vectors'][2]['body'] ?? null, $body, 'removed grade body equals the third signing vector');
same('"grade":85.0}', substr(event_payload::encode(event_payload::grade('e', 1, 2, 3, 85.0)), -13), 'a whole grade stays a float');
same('https://sync.example.edu/v1/events/moodle/enrollment',
    event_payload::url('https://sync.example.edu/v1/events/moodle/', event_payload::KIND_ENROLMENT), 'enrolment URL');
same('https://sync.example.edu/v1/events/moodle/grade',
    event_payload::url('https://sync.example.edu/v1/events/moodle', event_payload::KIND_GRADE), 'grade URL');
throws(fn() => event_payload::url('https://x', 'course'), 'unknown event kind');


// Language strings: every key the plugin uses exists, keys are sorted.
$string = [];
include($plugindir . '/lang/en/local_student_dashboard.php');
$keys = array_keys($string);
$sorted = $keys;
sort($sorted, SORT_STRING);
same($sorted, $keys, 'lang keys are sorted');
$used = [];
$iterator = new RecursiveIteratorIterator(new RecursiveDirectoryIterator($plugindir, FilesystemIterator::SKIP_DOTS));
foreach ($iterator as $file) {
    if (!preg_match('/\.(php|mustache)$/', $file->getFilename())) {
        continue;
    }
    $text = file_get_contents($file->getPathname());
    preg_match_all("/(?:get_string|lang_string)\\(\\s*'([a-z0-9_:]+)'\\s*,\\s*'local_student_dashboard'/", $text, $m);
    $used = array_merge($used, $m[1]);
    preg_match_all('/\{\{#str\}\}\s*([a-z0-9_:]+)\s*,\s*local_student_dashboard\b/', $text, $m);
    $used = array_merge($used, $m[1]);
    preg_match_all("/'(privacy:metadata:[a-z0-9_:]+)'/", $text, $m);
    $used = array_merge($used, $m[1]);
}
$dynamic = [];
foreach (['duplicatezohoid', 'invalidamount', 'invalidcourseid', 'invalidcurrency', 'invaliddate', 'invalidgrade',
        'invalidpercent', 'invalidstatus', 'invaliduserid', 'invalidvalue', 'invalidzohoid', 'nopermissions'] as $code) {
    $dynamic[] = 'warning:' . $code;
}
foreach (grade_converter::levels() as $level) {
    $dynamic[] = 'level:' . strtolower($level);
}
foreach (['paid', 'due', 'overdue'] as $status) {
    $dynamic[] = 'paymentstatus:' . $status;
}
foreach (['showprofile', 'showacademics', 'showfinance', 'showremainingbalance', 'showpayments', 'showgrades'] as $name) {
    $dynamic[] = 'settings:' . $name;
    $dynamic[] = 'settings:' . $name . '_desc';
}
foreach (['thresholddistinction', 'thresholdmerit', 'thresholdpass'] as $name) {
    $dynamic[] = 'settings:' . $name;
}
foreach (['registrations', 'payments', 'grades'] as $type) {
    $dynamic[] = 'privacy:path:' . $type;
}
foreach (['view', 'viewall', 'manage'] as $cap) {
    $dynamic[] = 'student_dashboard:' . $cap;
}
$used = array_unique(array_merge($used, $dynamic));
check(count($used) > 60, 'found the lang keys in use', '> 60', count($used));
foreach ($used as $key) {
    check(isset($string[$key]), 'lang string exists: ' . $key);
}

// The dashboard page rendered through its template.
require(__DIR__ . '/dashboard_test.php');
require(__DIR__ . '/currency_test.php');

echo $passed . ' passed, ' . $failed . " failed\n";
exit($failed === 0 ? 0 : 1);
