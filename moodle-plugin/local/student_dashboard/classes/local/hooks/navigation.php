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

namespace local_student_dashboard\local\hooks;

use core\hook\navigation\primary_extend;
use local_student_dashboard\local\access;

/**
 * Navigation hook callbacks.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class navigation {

    /**
     * Add "My student dashboard" to the primary navigation for students with data and for staff.
     *
     * @param primary_extend $hook The hook.
     */
    public static function primary_extend(primary_extend $hook): void {
        global $USER;

        if (during_initial_install() || !isloggedin() || isguestuser()) {
            return;
        }
        $context = \context_system::instance();
        $canviewall = has_capability('local/student_dashboard:viewall', $context);
        $canview = has_capability('local/student_dashboard:view', $context) && access::has_data((int) $USER->id);
        if (!$canviewall && !$canview) {
            return;
        }
        $hook->get_primaryview()->add(
            get_string('navigationlink', 'local_student_dashboard'),
            new \moodle_url('/local/student_dashboard/index.php'),
            \navigation_node::TYPE_CUSTOM,
            null,
            'local_student_dashboard'
        );
    }
}
