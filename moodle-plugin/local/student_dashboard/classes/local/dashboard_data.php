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

namespace local_student_dashboard\local;

/**
 * Loads what a student's dashboard shows: the plugin's rows and the course totals of Moodle's gradebook.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class dashboard_data {

    /**
     * Load the data of one user.
     *
     * @param int $userid The student.
     * @return array With registrations, payments, grades (each an array of records, grades joined with their unit),
     *     coursegrades (visible course totals with a grade) and lastsync (sync_clock::last()).
     */
    public static function load(int $userid): array {
        global $DB;

        $registrations = $DB->get_records('local_student_dashboard_reg', ['userid' => $userid],
            'registrationdate DESC, id DESC');
        $payments = $DB->get_records('local_student_dashboard_pay', ['userid' => $userid],
            'paymentdate DESC, duedate DESC, id DESC');
        $sql = "SELECT g.*, u.unitcode, u.unitname
                  FROM {local_student_dashboard_grade} g
             LEFT JOIN {local_student_dashboard_unit} u ON u.zohoid = g.unitzohoid
                 WHERE g.userid = :userid
              ORDER BY u.unitcode ASC, g.gradeddate ASC, g.id ASC";
        $grades = $DB->get_records_sql($sql, ['userid' => $userid]);

        return [
            'registrations' => array_values($registrations),
            'payments' => array_values($payments),
            'grades' => array_values($grades),
            'coursegrades' => self::course_grades($userid),
            'lastsync' => sync_clock::last(),
        ];
    }

    /**
     * The user's course totals that the user may see: visible course, grades shown, item and grade not hidden.
     *
     * @param int $userid The student.
     * @return \stdClass[] With courseid, fullname, idnumber, grademin, grademax, finalgrade, scaleitem.
     */
    public static function course_grades(int $userid): array {
        global $CFG, $DB;
        require_once($CFG->libdir . '/gradelib.php');

        $now = time();
        $sql = "SELECT gg.id, gi.courseid, c.fullname, c.idnumber, gi.grademin, gi.grademax, gi.gradetype,
                       s.scale, gg.finalgrade
                  FROM {grade_items} gi
                  JOIN {grade_grades} gg ON gg.itemid = gi.id AND gg.userid = :userid
                  JOIN {course} c ON c.id = gi.courseid
             LEFT JOIN {scale} s ON s.id = gi.scaleid
                 WHERE gi.itemtype = :itemtype
                   AND gg.finalgrade IS NOT NULL
                   AND c.visible = 1 AND c.showgrades = 1
                   AND (gi.hidden = 0 OR (gi.hidden > 1 AND gi.hidden < :now1))
                   AND (gg.hidden = 0 OR (gg.hidden > 1 AND gg.hidden < :now2))
              ORDER BY c.fullname ASC, gi.courseid ASC";
        $records = $DB->get_records_sql($sql, ['userid' => $userid, 'itemtype' => 'course', 'now1' => $now, 'now2' => $now]);
        $result = [];
        foreach ($records as $record) {
            $record->scaleitem = null;
            if ((int) $record->gradetype === GRADE_TYPE_SCALE && $record->scale !== null) {
                $items = array_map('trim', explode(',', $record->scale));
                $record->scaleitem = $items[max(1, (int) round((float) $record->finalgrade)) - 1] ?? null;
            }
            unset($record->scale);
            $result[] = $record;
        }
        return $result;
    }

    /**
     * The section visibility settings (domain setting student_dashboard.visibility).
     *
     * @return bool[] Keyed by showprofile, showacademics, showfinance, showremainingbalance, showpayments, showgrades.
     */
    public static function visibility(): array {
        $config = get_config('local_student_dashboard');
        $defaults = [
            'showprofile' => true,
            'showacademics' => true,
            'showfinance' => true,
            'showremainingbalance' => false,
            'showpayments' => true,
            'showgrades' => true,
        ];
        $visibility = [];
        foreach ($defaults as $name => $default) {
            $visibility[$name] = isset($config->$name) ? (bool) $config->$name : $default;
        }
        return $visibility;
    }

    /**
     * The grade converter with the configured thresholds (the defaults when the setting is unusable).
     *
     * @return grade_converter
     */
    public static function converter(): grade_converter {
        $config = get_config('local_student_dashboard');
        try {
            return new grade_converter(
                (float) ($config->thresholddistinction ?? grade_converter::DEFAULT_DISTINCTION),
                (float) ($config->thresholdmerit ?? grade_converter::DEFAULT_MERIT),
                (float) ($config->thresholdpass ?? grade_converter::DEFAULT_PASS)
            );
        } catch (\InvalidArgumentException $e) {
            debugging('local_student_dashboard: grade thresholds are not ordered, using the defaults', DEBUG_DEVELOPER);
            return new grade_converter();
        }
    }
}
