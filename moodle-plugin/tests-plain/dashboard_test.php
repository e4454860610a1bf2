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
 * Plain-PHP tests of the dashboard page: the output class's context rendered through the real template.
 *
 * Included by run.php (uses its check() and same()). Names pass through Moodle's format_string() (stand-in in
 * moodle_stubs.php) and must reach the HTML escaped exactly once.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

use local_student_dashboard\local\formatter;
use local_student_dashboard\local\grade_converter;
use local_student_dashboard\output\dashboard;

/**
 * Render the dashboard of one student as Moodle would.
 *
 * @param stdClass $user The student.
 * @param array $data As dashboard_data::load() returns it.
 * @param array $options isown, visibility overrides, currencyformat, lastsync.
 * @return array [html, context]
 */
function render_dashboard(stdClass $user, array $data, array $options = []): array {
    $visibility = ($options['visibility'] ?? []) + [
        'showprofile' => true, 'showacademics' => true, 'showfinance' => true, 'showremainingbalance' => true,
        'showpayments' => true, 'showgrades' => true,
    ];
    $data += ['registrations' => [], 'payments' => [], 'grades' => [], 'coursegrades' => [], 'lastsync' => 0];
    $dashboard = new dashboard($user, $data, $visibility, new formatter($options['currencyformat'] ?? 'symbol'),
        new grade_converter(), $options['isown'] ?? true);
    $context = $dashboard->export_for_template(new renderer_base());
    $template = file_get_contents(dirname(__DIR__) . '/local/student_dashboard/templates/dashboard.mustache');
    $html = (new mustache_lite('get_string'))->render($template, $context);
    return [$html, $context];
}

/**
 * The text a browser shows for some HTML (tags dropped, entities decoded once, spaces collapsed).
 *
 * @param string $html
 * @return string
 */
function visible_text(string $html): string {
    $text = html_entity_decode(strip_tags($html), ENT_QUOTES | ENT_HTML5, 'UTF-8');
    return trim(preg_replace('/\s+/u', ' ', $text));
}

/**
 * A name with characters HTML cares about, seeded.
 *
 * @param int $i
 * @return string
 */
function awkward_name(int $i): string {
    $pieces = ['Health', '&', 'Social', 'Care', '<', 'Basics', '5', '>', '"quoted"', "O'Brien", '&amp;', 'R&D', 'a<b',
        'Café', '#1', '£', '&#39;'];
    $words = [];
    $count = mt_rand(2, 6);
    for ($w = 0; $w < $count; $w++) {
        $words[] = $pieces[mt_rand(0, count($pieces) - 1)];
    }
    return 'N' . $i . ' ' . implode(' ', $words);
}

$student = (object) ['id' => 34, 'firstname' => "Siobhán", 'lastname' => "O'Neill & Sons", 'email' => 'siobhan@example.edu',
    'idnumber' => 'STU-<1>'];

// The issue's two names, exactly.
[$html] = render_dashboard($student, [
    'registrations' => [(object) ['zohoid' => 'R1', 'program' => 'Health & Social Care', 'registrationdate' => '2025-09-01',
        'totalfee' => '15000.00', 'scholarshippercent' => '0.00', 'currency' => 'GBP', 'status' => 'Active',
        'timemodified' => 0]],
    'grades' => [(object) ['unitzohoid' => 'U1', 'classzohoid' => '', 'unitcode' => 'Unit 5', 'unitname' => 'Digital Systems < Basics 5',
        'grade' => 'Merit', 'gradeddate' => '2026-01-22', 'timemodified' => 0]],
]);
$text = visible_text($html);
check(str_contains($text, 'Health & Social Care'), 'the program reads "Health & Social Care"', 'Health & Social Care', $text);
check(str_contains($text, 'Unit 5 Digital Systems < Basics 5'), 'the unit reads "Digital Systems < Basics 5"',
    'Digital Systems < Basics 5', $text);
foreach (['&amp;amp;', '&amp;lt;', '&amp;gt;', '&amp;#039;', '&amp;quot;'] as $double) {
    check(!str_contains($html, $double), 'no double escape ' . $double, 'absent', $double);
}
check(str_contains($html, 'Health &amp; Social Care'), 'the program is escaped once in the HTML');
check(str_contains($html, 'O&#039;Neill &amp; Sons'), 'the student name is escaped once in the HTML');

// Any name: what the student reads is what format_string() leaves of it, and no tag of it reaches the HTML.
mt_srand(18003);
for ($round = 0; $round < 40; $round++) {
    $names = [];
    for ($i = 0; $i < 6; $i++) {
        $names[] = awkward_name($round * 10 + $i);
    }
    [$html] = render_dashboard($student, [
        'registrations' => [(object) ['zohoid' => 'R1', 'program' => $names[0], 'registrationdate' => '2025-09-01',
            'totalfee' => '100.00', 'scholarshippercent' => '0.00', 'currency' => 'GBP', 'status' => $names[1],
            'timemodified' => 0]],
        'grades' => [(object) ['unitzohoid' => 'U1', 'classzohoid' => 'C1', 'unitcode' => $names[2], 'unitname' => $names[3],
            'grade' => 'Pass', 'gradeddate' => null, 'timemodified' => 0]],
        'coursegrades' => [
            (object) ['courseid' => 7, 'fullname' => $names[4], 'idnumber' => 'C1', 'grademin' => 0, 'grademax' => 100,
                'finalgrade' => 75, 'scaleitem' => null],
            (object) ['courseid' => 8, 'fullname' => $names[5], 'idnumber' => 'C2', 'grademin' => 0, 'grademax' => 100,
                'finalgrade' => 45, 'scaleitem' => null],
        ],
    ]);
    $text = visible_text($html);
    $shown = [$names[0], $names[1], $names[2] . ' ' . $names[3], $names[5]];
    foreach ($shown as $name) {
        // The student reads the name as format_string() made it, decoded once by the browser.
        $expected = trim(preg_replace('/\s+/u', ' ', html_entity_decode(format_string($name), ENT_QUOTES | ENT_HTML5, 'UTF-8')));
        check(str_contains($text, $expected), "round $round: the page reads the name", $expected, $text);
    }
    check(preg_match('/&amp;(amp|lt|gt|quot|#0?39);/', $html) === 0, "round $round: nothing escaped twice", 'none',
        preg_match('/.{20}&amp;(amp|lt|gt|quot|#0?39);.{20}/', $html, $m) ? $m[0] : '');
    check(preg_match('/<(?!\/?(div|p|section|h3|dl|dt|dd|table|caption|thead|tbody|tr|th|td|span|small)\b)/', $html) === 0,
        "round $round: no tag but the template's", 'none', preg_match('/.{10}<(?!\/?(div|p|section|h3|dl|dt|dd|table|caption|thead|tbody|tr|th|td|span|small)\b).{10}/', $html, $m) ? $m[0] : '');
}

// The template's own example context renders (the engine understands everything in it).
$template = file_get_contents(dirname(__DIR__) . '/local/student_dashboard/templates/dashboard.mustache');
preg_match('/Example context \(json\):\s*(\{.*?\})\s*\n\}\}/s', $template, $m);
$example = json_decode($m[1] ?? 'null', true);
check(is_array($example), 'the template has a JSON example context');
$html = (new mustache_lite('get_string'))->render($template, $example ?? []);
check(str_contains($html, 'BTEC Level 5 Diploma in IT'), 'the example context renders');

// BTEC grades: each level recorded in Zoho, with its date, beside the current grade of its class's course.
$grades = [
    (object) ['unitzohoid' => 'U1', 'classzohoid' => 'C1', 'unitcode' => 'Unit 1', 'unitname' => 'Programming', 'grade' => 'Merit',
        'gradeddate' => '2026-01-22', 'timemodified' => 0],
    (object) ['unitzohoid' => 'U2', 'classzohoid' => 'C2', 'unitcode' => 'Unit 2', 'unitname' => 'Networking', 'grade' => 'Refer',
        'gradeddate' => '2025-12-01', 'timemodified' => 0],
    (object) ['unitzohoid' => 'U2', 'classzohoid' => 'C2', 'unitcode' => 'Unit 2', 'unitname' => 'Networking', 'grade' => 'Pass',
        'gradeddate' => '2026-02-10', 'timemodified' => 0],
];
$coursegrades = [
    (object) ['courseid' => 11, 'fullname' => 'Programming (Sept 2025)', 'idnumber' => 'C1', 'grademin' => 0, 'grademax' => 100,
        'finalgrade' => 75, 'scaleitem' => null],
    (object) ['courseid' => 13, 'fullname' => 'Professional Practice', 'idnumber' => 'C3', 'grademin' => 0, 'grademax' => 100,
        'finalgrade' => 45, 'scaleitem' => null],
];
[$html, $context] = render_dashboard($student, ['grades' => $grades, 'coursegrades' => $coursegrades]);
$text = visible_text($html);
foreach (['Unit 1 Programming Merit 22 January 2026 Distinction Programming (Sept 2025)',
        'Unit 2 Networking Refer 1 December 2025 No grade yet',
        'Unit 2 Networking Pass 10 February 2026 No grade yet',
        'Professional Practice Not recorded yet Pass'] as $expected) {
    check(str_contains($text, $expected), 'grades row: ' . $expected, $expected, $text);
}
same(4, count($context['grades']), 'three recorded grades and one course with nothing recorded');

// Any mix: every recorded grade is one row with its level and date; a course total shows beside the recorded
// grades of its class, and on a row of its own only when nothing is recorded for its class.
$converter = new grade_converter();
mt_srand(18004);
for ($round = 0; $round < 200; $round++) {
    $classes = ['C1', 'C2', 'C3', 'C4', ''];
    $recorded = [];
    for ($i = mt_rand(0, 6); $i > 0; $i--) {
        $recorded[] = (object) ['unitzohoid' => 'U' . mt_rand(1, 4), 'classzohoid' => $classes[mt_rand(0, 4)],
            'unitcode' => 'Unit ' . mt_rand(1, 9), 'unitname' => 'Name ' . mt_rand(1, 9),
            'grade' => grade_converter::levels()[mt_rand(0, 3)],
            'gradeddate' => mt_rand(0, 3) ? sprintf('2026-%02d-%02d', mt_rand(1, 12), mt_rand(1, 28)) : null, 'timemodified' => 0];
    }
    $totals = [];
    foreach (array_slice($classes, 0, mt_rand(0, 4)) as $k => $class) {
        $totals[] = (object) ['courseid' => 100 + $k, 'fullname' => 'Course ' . $class, 'idnumber' => mt_rand(0, 4) ? $class : '',
            'grademin' => 0, 'grademax' => 100, 'finalgrade' => mt_rand(0, 100), 'scaleitem' => null];
    }
    [, $context] = render_dashboard($student, ['grades' => $recorded, 'coursegrades' => $totals]);
    $rows = $context['grades'] ?? [];
    $recordedclasses = array_filter(array_map(fn($g) => $g->classzohoid, $recorded));
    $own = array_values(array_filter($totals, fn($t) => $t->idnumber === '' || !in_array($t->idnumber, $recordedclasses, true)));
    same(count($recorded) + count($own), count($rows), "round $round: one row per recorded grade and per unrecorded course");
    foreach ($recorded as $i => $g) {
        $row = $rows[$i] ?? [];
        same(true, $row['hasrecorded'] ?? null, "round $round row $i is recorded");
        same(get_string('level:' . strtolower($g->grade), 'local_student_dashboard'), $row['level'] ?? null, "round $round row $i level");
        same($g->gradeddate === null ? '' : (new formatter())->date($g->gradeddate), $row['date'] ?? null, "round $round row $i date");
        $match = null;
        foreach ($totals as $t) {
            if ($g->classzohoid !== '' && $t->idnumber === $g->classzohoid) {
                $match = $t;
                break;
            }
        }
        same($match !== null, $row['hascurrent'] ?? null, "round $round row $i has the current grade of its class");
        if ($match !== null) {
            $level = $converter->convert((float) $match->finalgrade, 0.0, 100.0, null);
            same(get_string('level:' . strtolower($level), 'local_student_dashboard'), $row['currentlevel'], "round $round row $i current");
        }
    }
    foreach ($own as $j => $t) {
        $row = $rows[count($recorded) + $j] ?? [];
        same([false, format_string($t->fullname), true], [$row['hasrecorded'] ?? null, $row['unit'] ?? null,
            $row['hascurrent'] ?? null], "round $round: course row $j (nothing recorded for its class)");
    }
}

// Nothing yet: the message alone, for the student and for staff; and when the data was last synced.
$headings = ['Profile', 'Academics', 'Finance summary', 'Payment history', 'BTEC grades'];
foreach ([true => 'nodata', false => 'nodatastaff'] as $isown => $key) {
    [$html] = render_dashboard($student, [], ['isown' => (bool) $isown]);
    $text = visible_text($html);
    check(str_contains($text, get_string($key, 'local_student_dashboard')), "no data: the $key message");
    foreach ($headings as $heading) {
        check(!str_contains($text, $heading), "no data ($key): no $heading section", 'absent', $text);
    }
}
[$html] = render_dashboard($student, ['registrations' => [(object) ['zohoid' => 'R1', 'program' => 'P', 'registrationdate' => null,
    'totalfee' => '1.00', 'scholarshippercent' => '0.00', 'currency' => 'GBP', 'status' => '', 'timemodified' => 0]]]);
foreach ($headings as $heading) {
    check(str_contains(visible_text($html), $heading), "with data: the $heading section");
}
check(!str_contains($html, 'lastsync'), 'never synced: no "last updated" line');
[$html] = render_dashboard($student, ['lastsync' => gmmktime(2, 45, 0, 12, 7, 2026)], ['isown' => false]);
check(str_contains(visible_text($html), 'Last updated from the college records: 7 December 2026, 2:45 AM'),
    'the last sync is shown, even with no data', 'Last updated … 7 December 2026, 2:45 AM', visible_text($html));

// The sync clock: written at most once a minute.
global $zmsynctestconfigwrites;
local_student_dashboard\local\sync_clock::touch(1000000);
$writes = $zmsynctestconfigwrites;
same(1000000, local_student_dashboard\local\sync_clock::last(), 'the clock records the first call');
local_student_dashboard\local\sync_clock::touch(1000059);
same(1000000, local_student_dashboard\local\sync_clock::last(), 'a call within the minute is not written');
same($writes, $zmsynctestconfigwrites, 'no config write within the minute');
local_student_dashboard\local\sync_clock::touch(1000060);
same(1000060, local_student_dashboard\local\sync_clock::last(), 'a call a minute later is');
