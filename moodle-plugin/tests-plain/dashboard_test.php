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
