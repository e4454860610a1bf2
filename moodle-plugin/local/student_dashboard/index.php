<?php
// This file is part of Moodle - http://moodle.org/
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
 * The student dashboard page: a student sees their own data; staff with viewall may choose a student.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

require(__DIR__ . '/../../config.php');

use local_student_dashboard\local\access;
use local_student_dashboard\local\dashboard_data;
use local_student_dashboard\local\formatter;
use local_student_dashboard\output\dashboard;

$userid = optional_param('userid', 0, PARAM_INT);
$search = optional_param('search', '', PARAM_NOTAGS);

require_login(null, false);

$context = context_system::instance();
$urlparams = array_filter(['userid' => $userid, 'search' => $search]);
$PAGE->set_url(new moodle_url('/local/student_dashboard/index.php', $urlparams));
$PAGE->set_context($context);
$PAGE->set_pagelayout('standard');

// Throws unless the user may see this dashboard: their own with :view, anyone's with :viewall.
$student = access::require_target_user($userid);
$isown = ((int) $student->id === (int) $USER->id);
$canviewall = access::can_view_all();

$title = get_string('pluginname', 'local_student_dashboard');
$PAGE->set_title($isown ? $title : $title . ': ' . fullname($student));
$PAGE->set_heading($title);

echo $OUTPUT->header();

if ($canviewall) {
    $students = [];
    foreach (access::search_students($search) as $found) {
        $students[] = [
            'id' => (int) $found->id,
            'fullname' => fullname($found),
            'email' => $found->email,
            'idnumber' => $found->idnumber,
            'url' => (new moodle_url('/local/student_dashboard/index.php', ['userid' => $found->id]))->out(false),
            'current' => ((int) $found->id === (int) $student->id),
        ];
    }
    echo $OUTPUT->render_from_template('local_student_dashboard/student_selector', [
        'actionurl' => (new moodle_url('/local/student_dashboard/index.php'))->out(false),
        'search' => $search,
        'searched' => $search !== '',
        'students' => $students,
    ]);
}

$dashboard = new dashboard(
    $student,
    dashboard_data::load((int) $student->id),
    dashboard_data::visibility(),
    new formatter((string) get_config('local_student_dashboard', 'currencyformat') ?: 'symbol'),
    dashboard_data::converter(),
    $isown
);
echo $OUTPUT->render($dashboard);

echo $OUTPUT->footer();
